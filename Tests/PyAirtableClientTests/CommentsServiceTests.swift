import Foundation
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import Testing

/// `client.comments` against the real server.
@Suite("Comments service", .timeLimit(.minutes(15)))
struct CommentsServiceTests {
    @Test("create with a mention, list every page newest first, update, delete; errors are typed")
    func roundTrip() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let (_, table) = try await WebhooksServiceTests.demoTable(client, demo)
                let record = try await client.records.create(in: table, fields: ["Name": "discussed"]).get()
                let me = try await client.users.me()
                let first = try await client.comments.create(on: record.id, text: "Hello @[\(me.id)]")
                #expect(first.author.id == me.id && first.mentions.map(\.id) == [me.id] && first.recordID == record.id)
                for index in 0..<4 {
                    _ = try await client.comments.create(on: record.id, text: "n\(index)")
                }
                let all = try await client.comments.all(on: record.id, pageSize: 2).collect()
                #expect(all.map(\.text) == ["n3", "n2", "n1", "n0", first.text])
                let page = try await client.comments.list(on: record.id, pageSize: 2)
                #expect(page.data.count == 2 && page.nextCursor != nil)

                let edited = try await client.comments.update(first.id, text: "edited")
                #expect(edited.text == "edited" && edited.updatedAt != nil)
                #expect(try await client.comments.get(first.id).text == "edited")
                try await client.comments.delete(first.id)
                await #expect(throws: PyAirtableError.notFound) { try await client.comments.get(first.id) }
                await #expect(throws: PyAirtableError.validation) {
                    try await client.comments.create(on: record.id, text: " ")
                }
            }
        }
    }
}
