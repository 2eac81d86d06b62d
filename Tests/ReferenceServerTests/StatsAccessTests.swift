import Foundation
import HTTPTypes
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

/// `GET /api/v1/stats` counts what the caller can see, never another tenant's data; the whole
/// server's counts are for the operators the server names.
@Suite("Stats: counts of what the caller can see", .timeLimit(.minutes(15)))
struct StatsAccessTests {
    @Test("an outsider's stats count only their own workspaces; sharing and unsharing a workspace moves the counts")
    func outsiderSeesOnlyOwnCounts() async throws {
        try await Harness.withServer { api, _ in
            let (ada, _) = try await api.register("Ada")
            let (adaWorkspace, _, adaTable) = try await ada.scaffold()
            for name in ["a", "b", "c"] { _ = try await ada.createRecord(in: adaTable.id, ["Name": .string(name)]) }
            let (bob, bobUser) = try await api.register("Bob")

            let empty = try await bob.stats()
            #expect(empty.scope == .workspaces)
            #expect(empty.users == 1, "only Bob himself")
            #expect(
                [empty.workspaces, empty.bases, empty.tables, empty.records, empty.events] == [0, 0, 0, 0, 0] as [Int]
            )
            #expect(empty.requests == nil)

            let (_, _, bobTable) = try await bob.scaffold()
            _ = try await bob.createRecord(in: bobTable.id, ["Name": "mine"])
            let own = try await bob.stats()
            #expect(own.users == 1)
            #expect([own.workspaces, own.bases, own.tables, own.records] == [1, 1, 1, 1] as [Int], "\(own)")
            #expect(own.events == 4, "workspace, base, table and record: \(own)")
            let adaStats = try await ada.stats()
            #expect(
                [adaStats.users, adaStats.workspaces, adaStats.records, adaStats.events] == [1, 1, 3, 6] as [Int],
                "\(adaStats)"
            )
            // The log's head is a position everyone shares, not a count of anyone's data.
            #expect(own.lastEventSeq == adaStats.lastEventSeq)

            try await ada.addMember(adaWorkspace.id, user: bobUser.id, role: .viewer)
            let shared = try await bob.stats()
            #expect(
                [shared.users, shared.workspaces, shared.bases, shared.tables, shared.records] == [2, 2, 2, 2, 4]
                    as [Int]
            )
            #expect(shared.events == 4 + 6 + 1, "his own, Ada's workspace's, and his being added: \(shared)")

            let removed = try await ada.send(.delete, "workspaces/\(adaWorkspace.id)/members/\(bobUser.id)")
            #expect(removed.status == .noContent)
            let after = try await bob.stats()
            #expect(
                [after.users, after.workspaces, after.bases, after.tables, after.records] == [1, 1, 1, 1, 1] as [Int]
            )
            #expect(after.events == 4 + 1, "his own and his removal, which names him: \(after)")
        }
    }

    @Test("scope=server is for the operators the server names: 403 for anyone else, 422 for an unknown scope")
    func serverScopeIsForOperators() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let (adaToken, ada, bobToken) = try await Harness.withServer(dataDirectory: directory.path, clock: clock) {
            api,
            _ in
            let (ada, adaUser) = try await api.register("Ada")
            let (_, _, table) = try await ada.scaffold()
            _ = try await ada.createRecord(in: table.id, ["Name": "a"])
            let (bob, _) = try await api.register("Bob")
            _ = try await bob.createWorkspace()
            expectError(try await ada.send(.get, "stats?scope=server"), .forbidden, .forbidden)
            return (try #require(ada.token), adaUser, try #require(bob.token))
        }
        let path = directory.path
        let operators: (inout ServerConfiguration) -> Void = { $0.operatorUserIDs = [ada.id] }
        try await Harness.withServer(dataDirectory: path, clock: clock, configure: operators) { api, _ in
            let operatorView = try await api.authorized(adaToken).call(
                .get,
                "stats?scope=server",
                as: ServerStats.self
            )
            #expect(operatorView.scope == .server)
            #expect(
                [operatorView.users, operatorView.workspaces, operatorView.records] == [2, 2, 1] as [Int],
                "\(operatorView)"
            )
            #expect(operatorView.requests != nil)
            let bob = api.authorized(bobToken)
            let refused = expectError(try await bob.send(.get, "stats?scope=server"), .forbidden, .forbidden)
            #expect(refused?.message.contains("operator") == true)
            expectError(try await bob.send(.get, "stats?scope=everything"), .unprocessableContent, .validation)
            let own = try await bob.stats()
            #expect(own.scope == .workspaces && own.workspaces == 1 && own.records == 0)
        }
    }
}
