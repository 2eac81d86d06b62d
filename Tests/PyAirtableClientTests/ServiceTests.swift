import Foundation
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import Testing

/// Every service method against the real reference server.
@Suite("Services against the server", .timeLimit(.minutes(15)))
struct ServiceTests {
    /// A client over `server` keeping its credentials in memory.
    static func withAccountClient<T: Sendable>(
        _ server: TestServer,
        _ body: (PyAirtableClient) async throws -> T
    ) async throws -> T {
        try await Fixtures.withClient(
            server,
            token: nil,
            configure: { $0.credentials = .store(InMemoryTokenStore()) },
            body
        )
    }

    static func uniqueEmail(_ name: String) -> String {
        "\(name)-\(UUID().uuidString.prefix(8).lowercased())@example.com"
    }

    @Test("health answers ok without credentials")
    func health() async throws {
        try await TestServer.withRunning { server in
            try await Fixtures.withClient(server, token: nil) { client in
                let health = try await client.health()
                #expect(health.status == "ok")
                #expect(!health.version.isEmpty)
            }
        }
    }

    @Test("register, login and logout manage the client's credentials")
    func registerLoginLogout() async throws {
        try await TestServer.withRunning { server in
            let email = Self.uniqueEmail("ada")
            try await Self.withAccountClient(server) { client in
                #expect(try await client.credentials() == nil)
                await #expect(throws: PyAirtableError.unauthorized) { try await client.users.me() }

                let registered = try await client.auth.register(email: email, password: "correct horse", name: "Ada")
                #expect(registered.user.email == email)
                #expect(registered.tokens.tokenType == "Bearer")
                let credentials = try #require(try await client.credentials())
                #expect(credentials.accessToken == registered.tokens.accessToken)
                #expect(credentials.refreshToken == registered.tokens.refreshToken)
                #expect(credentials.userID == registered.user.id)
                #expect(try await client.users.me().id == registered.user.id)

                try await client.auth.logout()
                #expect(try await client.credentials() == nil)
                await #expect(throws: PyAirtableError.unauthorized) { try await client.users.me() }

                // Logging out revoked the refresh token on the server too.
                var stale = credentials
                stale.expiresAt = Date().addingTimeInterval(-1)
                let store = InMemoryTokenStore([URL(string: server.url)!.absoluteString: stale])
                _ = try await Fixtures.withClient(server, token: nil, configure: { $0.credentials = .store(store) }) {
                    stale in
                    await #expect(throws: PyAirtableError.notAuthenticated) { try await stale.users.me() }
                }

                await #expect(throws: PyAirtableError.unauthorized) {
                    try await client.auth.login(email: email, password: "wrong password")
                }
                let login = try await client.auth.login(email: email, password: "correct horse")
                #expect(login.user.id == registered.user.id)
                #expect(try await client.users.me().email == email)

                await #expect(throws: PyAirtableError.conflict) {
                    try await client.auth.register(email: email, password: "another pass", name: "Twin")
                }
                let short = await #expect(throws: PyAirtableError.validation) {
                    try await client.auth.register(email: Self.uniqueEmail("short"), password: "short", name: "S")
                }
                #expect(short?.field == "password")
            }
        }
    }

    @Test("personal access tokens: create, list, use, delete")
    func personalAccessTokens() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let created = try await client.auth.createToken(name: "ci", expiresIn: 3600)
                let secret = try #require(created.token)
                #expect(secret.hasPrefix("pat_"))
                #expect(created.name == "ci")
                #expect(created.expiresAt != nil)

                let listed = try await client.auth.tokens()
                let entry = try #require(listed.first { $0.id == created.id })
                #expect(entry.token == nil, "secrets are shown only once")

                try await Self.withAccountClient(server) { scripted in
                    try await scripted.auth.use(personalAccessToken: secret)
                    #expect(try await scripted.credentials()?.personalAccessToken == secret)
                    #expect(try await scripted.users.me().email == demo.email)

                    try await client.auth.deleteToken(created.id)
                    #expect(try await client.auth.tokens().contains { $0.id == created.id } == false)
                    await #expect(throws: PyAirtableError.unauthorized) { try await scripted.users.me() }
                }
                await #expect(throws: PyAirtableError.notFound) { try await client.auth.deleteToken(created.id) }
            }
        }
    }

    @Test("users: me and update, with a version check")
    func users() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let me = try await client.users.me()
                #expect(me.email == demo.email)
                let renamed = try await client.users.update(name: "Grace", ifVersion: me.version)
                #expect(renamed.name == "Grace")
                #expect(renamed.version == me.version + 1)
                #expect(try await client.users.me().name == "Grace")
                await #expect(throws: PyAirtableError.preconditionFailed) {
                    try await client.users.update(name: "Stale", ifVersion: me.version)
                }
                #expect(try await client.users.me().name == "Grace")
            }
        }
    }

    @Test("workspaces: list, get, create, update, delete")
    func workspaces() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let initial = try await client.workspaces.list()
                #expect(initial.contains { $0.id == demo.workspaceID })

                let created = try await client.workspaces.create(name: "Research")
                #expect(created.name == "Research")
                #expect(created.role == .owner)
                #expect(try await client.workspaces.list().map(\.id).contains(created.id))
                #expect(try await client.workspaces.get(created.id) == created)

                let renamed = try await client.workspaces.update(created.id, name: "R&D", ifVersion: created.version)
                #expect(renamed.name == "R&D")
                #expect(renamed.version == created.version + 1)
                await #expect(throws: PyAirtableError.preconditionFailed) {
                    try await client.workspaces.update(created.id, name: "Stale", ifVersion: created.version)
                }

                try await client.workspaces.delete(created.id, ifVersion: renamed.version)
                await #expect(throws: PyAirtableError.notFound) { try await client.workspaces.get(created.id) }
                #expect(try await client.workspaces.list().map(\.id).contains(created.id) == false)
            }
        }
    }

    @Test("workspace members: add by id and by email, change role, remove")
    func members() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let bobEmail = Self.uniqueEmail("bob")
            let carolEmail = Self.uniqueEmail("carol")
            try await Fixtures.withClient(server, token: demo.token) { owner in
                try await Self.withAccountClient(server) { bob in
                    try await Self.withAccountClient(server) { carol in
                        let bobUser = try await bob.auth.register(
                            email: bobEmail,
                            password: "bob-password",
                            name: "Bob"
                        )
                        let carolUser = try await carol.auth.register(
                            email: carolEmail,
                            password: "carol-password",
                            name: "Carol"
                        ).user
                        let workspace = try await owner.workspaces.create(name: "Shared")
                        await #expect(throws: PyAirtableError.notFound) { try await bob.workspaces.get(workspace.id) }

                        let byID = try await owner.workspaces.addMember(
                            to: workspace.id,
                            userID: bobUser.user.id,
                            role: .editor
                        )
                        #expect(byID.userID == bobUser.user.id)
                        #expect(byID.role == .editor)
                        let byEmail = try await owner.workspaces.addMember(
                            to: workspace.id,
                            email: carolEmail,
                            role: .viewer
                        )
                        #expect(byEmail.userID == carolUser.id)
                        #expect(byEmail.email == carolEmail)

                        let members = try await owner.workspaces.members(of: workspace.id)
                        #expect(members.count == 3)
                        #expect(Set(members.map(\.role)) == [.owner, .editor, .viewer])
                        #expect(try await bob.workspaces.get(workspace.id).role == .editor)
                        #expect(try await carol.workspaces.get(workspace.id).role == .viewer)
                        await #expect(throws: PyAirtableError.forbidden) {
                            try await carol.bases.create(in: workspace.id, name: "Not allowed")
                        }

                        let promoted = try await owner.workspaces.updateMember(
                            in: workspace.id,
                            user: bobUser.user.id,
                            role: .creator
                        )
                        #expect(promoted.role == .creator)
                        #expect(try await bob.workspaces.get(workspace.id).role == .creator)
                        #expect(try await bob.bases.create(in: workspace.id, name: "Bob's").name == "Bob's")

                        try await owner.workspaces.removeMember(from: workspace.id, user: carolUser.id)
                        #expect(try await owner.workspaces.members(of: workspace.id).count == 2)
                        await #expect(throws: PyAirtableError.notFound) { try await carol.workspaces.get(workspace.id) }

                        await #expect(throws: PyAirtableError.invalidArgument) {
                            try await owner.workspaces.addMember(to: workspace.id, role: .viewer)
                        }
                    }
                }
            }
        }
    }

    @Test("bases: list, get, create, update, delete")
    func bases() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let workspace = try await client.workspaces.create(name: "Bases")
                #expect(try await client.bases.list(in: workspace.id).isEmpty)
                let base = try await client.bases.create(in: workspace.id, name: "Inventory")
                #expect(base.workspaceID == workspace.id)
                #expect(try await client.bases.list(in: workspace.id) == [base])
                #expect(try await client.bases.get(base.id) == base)
                let renamed = try await client.bases.update(base.id, name: "Stock", ifVersion: base.version)
                #expect(renamed.name == "Stock")
                #expect(try await client.bases.get(base.id).name == "Stock")
                try await client.bases.delete(base.id)
                await #expect(throws: PyAirtableError.notFound) { try await client.bases.get(base.id) }
                #expect(try await client.bases.list(in: workspace.id).isEmpty)
            }
        }
    }

    @Test("tables: list, get, create with fields, update, delete")
    func tables() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                #expect(table.fields.map(\.name) == ["Name", "Score", "Status"])
                #expect(table.primaryFieldID == table.field(named: "Name")?.id)
                #expect(table.field(named: "Status")?.options?.choices?.map(\.name) == ["Todo", "Done"])
                #expect(!table.views.isEmpty, "a table starts with a default view")

                #expect(try await client.tables.list(in: table.baseID).map(\.id) == [table.id])
                #expect(try await client.tables.get(table.id) == table)

                let updated = try await client.tables.update(
                    table.id,
                    with: UpdateTableRequest(name: "People", description: "Everyone we know"),
                    ifVersion: table.version
                )
                #expect(updated.name == "People")
                #expect(updated.description == "Everyone we know")
                await #expect(throws: PyAirtableError.preconditionFailed) {
                    try await client.tables.update(
                        table.id,
                        with: UpdateTableRequest(name: "Stale"),
                        ifVersion: table.version
                    )
                }
                await #expect(throws: PyAirtableError.validation) {
                    try await client.tables.create(
                        in: table.baseID,
                        name: "Bad",
                        fields: [
                            CreateFieldRequest(name: "A", type: .singleLineText),
                            CreateFieldRequest(name: "A", type: .number),
                        ]
                    )
                }

                try await client.tables.delete(table.id)
                await #expect(throws: PyAirtableError.notFound) { try await client.tables.get(table.id) }
                #expect(try await client.tables.list(in: table.baseID).isEmpty)
            }
        }
    }

    @Test("fields: list, create, update, delete")
    func fields() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                #expect(try await client.fields.list(in: table.id).map(\.name) == ["Name", "Score", "Status"])

                let email = try await client.fields.create(
                    in: table.id,
                    field: CreateFieldRequest(name: "Email", type: .email)
                )
                #expect(email.type == .email)
                #expect(email.tableID == table.id)
                #expect(try await client.fields.list(in: table.id).map(\.name) == ["Name", "Score", "Status", "Email"])

                let renamed = try await client.fields.update(
                    email.id,
                    with: UpdateFieldRequest(name: "Mail", description: "work address"),
                    ifVersion: email.version
                )
                #expect(renamed.name == "Mail")
                #expect(renamed.description == "work address")
                #expect(renamed.type == .email)

                try await client.fields.delete(email.id)
                #expect(try await client.fields.list(in: table.id).map(\.id).contains(email.id) == false)
                await #expect(throws: PyAirtableError.notFound) { try await client.fields.delete(email.id) }
            }
        }
    }

    @Test("views: list, get, create, update, delete")
    func views() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                let defaults = try await client.views.list(in: table.id)
                #expect(defaults.map(\.id) == table.views.map(\.id))

                let view = try await client.views.create(
                    in: table.id,
                    view: CreateViewRequest(
                        name: "Done",
                        filter: "{Status} = 'Done'",
                        sort: [.descending("Score")],
                        fields: ["Name", "Score"]
                    )
                )
                #expect(view.name == "Done")
                #expect(view.filter == "{Status} = 'Done'")
                #expect(view.sort == [.descending("Score")])
                #expect(try await client.views.get(view.id) == view)
                #expect(try await client.views.list(in: table.id).count == defaults.count + 1)

                let updated = try await client.views.update(
                    view.id,
                    with: UpdateViewRequest(name: "Finished"),
                    ifVersion: view.version
                )
                #expect(updated.name == "Finished")
                #expect(updated.filter == view.filter)
                await #expect(throws: PyAirtableError.validation) {
                    try await client.views.update(view.id, with: UpdateViewRequest(filter: "{Nope} = 1"))
                }

                try await client.views.delete(view.id)
                await #expect(throws: PyAirtableError.notFound) { try await client.views.get(view.id) }
            }
        }
    }

    @Test("records: create, get, update merges, replace clears, delete")
    func recordCRUD() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                let created = try await client.records.create(
                    in: table.id,
                    fields: ["Name": "Ada", "Score": 3, "Status": "Todo"]
                ).get()
                #expect(created.tableID == table.id)
                #expect(created.version == 1)
                #expect(created.fields["Name"] == "Ada")
                #expect(created.fields["Score"] == .number(3))
                #expect(try await client.records.get(created.id) == created)

                let updated = try await client.records.update(created.id, fields: ["Score": 4], ifVersion: 1).get()
                #expect(updated.version == 2)
                #expect(updated.fields["Score"] == .number(4))
                #expect(updated.fields["Name"] == "Ada", "update keeps the fields it does not name")

                let replaced = try await client.records.replace(created.id, fields: ["Name": "Grace"], ifVersion: 2)
                    .get()
                #expect(replaced.version == 3)
                #expect(replaced.fields["Name"] == "Grace")
                #expect(replaced.fields["Score"] == nil || replaced.fields["Score"] == .null, "replace clears the rest")
                #expect(replaced.fields["Status"] == nil || replaced.fields["Status"] == .null)

                await #expect(throws: PyAirtableError.validation) {
                    try await client.records.update(created.id, fields: ["Score": "not a number"]).get()
                }
                await #expect(throws: PyAirtableError.validation) {
                    try await client.records.update(created.id, fields: ["Status": "Unknown choice"]).get()
                }

                let deleted = try await client.records.delete(created.id, ifVersion: 3).get()
                #expect(deleted.id == created.id)
                #expect(deleted.deleted)
                await #expect(throws: PyAirtableError.notFound) { try await client.records.get(created.id) }
                await #expect(throws: PyAirtableError.notFound) { try await client.records.delete(created.id).get() }
            }
        }
    }

    @Test("records.list: filter, sort, fields, view, page size and cursor")
    func recordList() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                let rows: [(String, Double, String)] = [
                    ("Ada", 5, "Done"), ("Bob", 2, "Todo"), ("Cy", 4, "Done"), ("Di", 1, "Done"), ("Ed", 3, "Todo"),
                ]
                _ = try await client.records.batch(
                    in: table.id,
                    operations: rows.map {
                        .create(fields: ["Name": .string($0.0), "Score": .number($0.1), "Status": .string($0.2)])
                    }
                )

                let all = try await client.records.list(in: table.id)
                #expect(all.data.count == 5)
                #expect(all.nextCursor == nil)

                let done = try await client.records.list(
                    in: table.id,
                    query: RecordQuery(
                        fields: ["Name", "Score"],
                        sort: [.descending("Score")],
                        filter: "AND({Status} = 'Done', {Score} > 1)"
                    )
                )
                #expect(done.data.map { $0.fields["Name"] } == ["Ada", "Cy"])
                #expect(done.data.allSatisfy { $0.fields["Status"] == nil }, "only the asked-for fields")

                let byName = try await client.records.list(
                    in: table.id,
                    query: RecordQuery(sort: [.descending("Name")])
                )
                #expect(byName.data.map { $0.fields["Name"] } == ["Ed", "Di", "Cy", "Bob", "Ada"])

                _ = try await client.views.create(
                    in: table.id,
                    view: CreateViewRequest(name: "Todo", filter: "{Status} = 'Todo'", sort: [SortSpec(field: "Score")])
                )
                let todo = try await client.records.list(in: table.id, query: RecordQuery(view: "Todo"))
                #expect(todo.data.map { $0.fields["Name"] } == ["Bob", "Ed"])

                var query = RecordQuery(sort: [SortSpec(field: "Score")], pageSize: 2)
                var names: [FieldValue?] = []
                var pages = 0
                repeat {
                    let page = try await client.records.list(in: table.id, query: query)
                    #expect(page.data.count <= 2)
                    names += page.data.map { $0.fields["Name"] }
                    pages += 1
                    query.cursor = page.nextCursor
                } while query.cursor != nil
                #expect(pages == 3)
                #expect(names == ["Di", "Bob", "Ed", "Cy", "Ada"])

                await #expect(throws: PyAirtableError.invalidArgument) {
                    try await client.records.list(in: table.id, query: RecordQuery(pageSize: 0))
                }
                let badFormula = await #expect(throws: PyAirtableError.validation) {
                    try await client.records.list(in: table.id, query: RecordQuery(filter: "{Score} >"))
                }
                #expect(badFormula?.status == 400 || badFormula?.status == 422)
            }
        }
    }

    @Test("records.batch: create, update and delete in one call, all or nothing")
    func recordBatch() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                let first = try await client.records.create(in: table.id, fields: ["Name": "One"]).get()
                let second = try await client.records.create(in: table.id, fields: ["Name": "Two"]).get()

                let results = try await client.records.batch(
                    in: table.id,
                    operations: [
                        .create(fields: ["Name": "Three"]),
                        .update(id: first.id, fields: ["Score": 9], ifVersion: first.version),
                        .delete(id: second.id, ifVersion: nil),
                    ]
                )
                #expect(results.count == 3)
                guard case .record(let three) = results[0], case .record(let one) = results[1] else {
                    Issue.record("expected two records, got \(results)")
                    return
                }
                #expect(three.fields["Name"] == "Three")
                #expect(one.fields["Score"] == .number(9))
                #expect(results[2] == .deleted(second.id))
                #expect(Set(try await client.records.list(in: table.id).data.map(\.id)) == [first.id, three.id])

                // A stale version anywhere rolls the whole batch back.
                await #expect(throws: PyAirtableError.preconditionFailed) {
                    try await client.records.batch(
                        in: table.id,
                        operations: [
                            .create(fields: ["Name": "Four"]),
                            .update(id: first.id, fields: ["Score": 1], ifVersion: 1),
                        ]
                    )
                }
                #expect(try await client.records.list(in: table.id).data.count == 2)

                await #expect(throws: PyAirtableError.invalidArgument) {
                    try await client.records.batch(in: table.id, operations: [])
                }
                await #expect(throws: PyAirtableError.invalidArgument) {
                    try await client.records.batch(
                        in: table.id,
                        operations: Array(repeating: .create(fields: [:]), count: 101)
                    )
                }
            }
        }
    }

    @Test("an update with a stale version throws .preconditionFailed carrying the server's record")
    func staleVersionConflict() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                let original = try await client.records.create(in: table.id, fields: ["Name": "Ada", "Score": 1]).get()
                let theirs = try await client.records.update(original.id, fields: ["Score": 2]).get()

                let error = try #require(
                    await #expect(throws: PyAirtableError.self) {
                        try await client.records.update(
                            original.id,
                            fields: ["Score": 3],
                            ifVersion: original.version,
                            onConflict: .fail
                        ).get()
                    }
                )
                #expect(error == .preconditionFailed)
                #expect(error.status == 412)
                #expect(error.errorType == .conflict)
                #expect(error.requestID?.isEmpty == false)
                #expect(error.operation == ClientOperation(service: "records", name: "update"))
                #expect(error.isRetryable == false)
                let current = try #require(error.currentRecord)
                #expect(current == theirs)
                #expect(current == (try await client.records.get(original.id)))
                #expect(current.fields["Score"] == .number(2), "the losing write was not applied")
            }
        }
    }
}
