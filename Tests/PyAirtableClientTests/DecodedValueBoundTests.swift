import Foundation
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import Testing

@Suite("The SDK's table of decoded values is bounded in bytes", .timeLimit(.minutes(15)))
struct DecodedValueBoundTests {
    @Test("large answers fill the decoded-value table to its byte bound, not its entry bound; one past it is not kept")
    func boundedInBytes() async throws {
        #expect(PyAirtableClient.CacheSettings().decodedValueMaximumBytes == 8 * 1024 * 1024)
        let bound = 16 * 1024
        try await CacheFixture.with { cache in
            try await TestServer.withRunning { server in
                let demo = try await server.seedDemo()
                let smallTable: (inout PyAirtableClient.Configuration) -> Void = {
                    $0.cache.decodedValueMaximumBytes = bound
                }
                try await cache.withClient(url: server.url, token: demo.token, configure: smallTable) { client in
                    let workspace = try await client.workspaces.create(name: "Wide values")
                    let base = try await client.bases.create(in: workspace.id, name: "Base")
                    let table = try await client.tables.create(
                        in: base.id,
                        name: "Notes",
                        fields: [CreateFieldRequest(name: "Text", type: .multilineText)]
                    )
                    let text = String(repeating: "n", count: 2048)
                    var ids: [RecordID] = []
                    for index in 0..<20 {
                        let record = try await client.records.create(
                            in: table.id,
                            fields: ["Text": .string("\(index) \(text)")]
                        ).get()
                        ids.append(record.id)
                    }
                    // Each read decodes a 2 KiB answer and keeps it: twenty of them are far under the
                    // 1,000-entry bound but over the 16 KiB one.
                    for id in ids { _ = try await client.records.get(id) }
                    let footprint = client.cache.decodedValues
                    #expect(footprint.bytes <= bound, "\(footprint)")
                    #expect(footprint.count > 0 && footprint.count < ids.count, "\(footprint)")

                    let huge = try await client.records.create(
                        in: table.id,
                        fields: ["Text": .string(String(repeating: "h", count: 2 * bound))]
                    ).get()
                    _ = try await client.records.get(huge.id)
                    #expect(client.cache.decodedValues == footprint, "an answer larger than the bound is not kept")
                }
            }
        }
    }
}
