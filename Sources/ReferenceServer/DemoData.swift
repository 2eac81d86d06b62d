import Foundation
import PyAirtableModels

/// The demo account and data `pyat serve --demo` creates.
public struct DemoCredentials: Sendable {
    public var email: String
    public var password: String
    public var token: String
    public var workspaceID: WorkspaceID?
}

/// Seeds a demo user, a workspace with a base and two tables of sample records, and issues a
/// personal access token. Running it again reuses the user and data and issues a new token.
public enum DemoData {
    public static let email = "demo@pyat.dev"
    public static let password = "pyat-demo-password"

    public static func seed(services: ServerServices) async throws -> DemoCredentials {
        let store = services.store
        let now = services.configuration.now
        let user: User
        if let existing = try await store.userByEmail(email) {
            user = existing
        } else {
            let hash = try await services.auth.hashPassword(password)
            guard
                let created = try await store.createUser(
                    email: email,
                    name: "Demo User",
                    passwordHash: hash,
                    context: WriteContext(actor: nil, now: now())
                ).value
            else { throw ServerError.conflict("the demo user could not be created") }
            user = created
        }
        let context = { WriteContext(actor: user.id, now: now()) }
        var workspaceID = try await store.workspaces(user: user.id).first?.id
        if workspaceID == nil {
            workspaceID = try await seedWorkspace(store: store, context: context)
        }
        let secret = Authenticator.newPersonalToken()
        _ = try await store.createAccessToken(
            name: "demo",
            secret: secret,
            hash: Authenticator.hash(secret),
            expiresAt: nil,
            context: context()
        )
        return DemoCredentials(email: email, password: password, token: secret, workspaceID: workspaceID)
    }

    private static func seedWorkspace(store: any DataStore, context: () -> WriteContext) async throws -> WorkspaceID? {
        guard let workspace = try await store.createWorkspace(.init(name: "Demo workspace"), context: context()).value,
            let base = try await store.createBase(
                workspace: workspace.id,
                .init(name: "Product launch"),
                context: context()
            ).value
        else { return nil }
        let statuses = ["Todo", "In progress", "Done"].map { SelectChoice(name: $0) }
        let tags = ["backend", "frontend", "docs", "infra"].map { SelectChoice(name: $0) }
        guard
            let projects = try await store.createTable(
                base: base.id,
                CreateTableRequest(
                    name: "Projects",
                    fields: [
                        .init(name: "Name", type: .singleLineText),
                        .init(name: "Status", type: .singleSelect, options: .init(choices: statuses)),
                        .init(name: "Score", type: .number, options: .init(precision: 0)),
                        .init(name: "Due", type: .date),
                        .init(name: "Owner", type: .email),
                        .init(name: "Tags", type: .multipleSelects, options: .init(choices: tags)),
                        .init(name: "Shipped", type: .checkbox),
                    ]
                ),
                context: context()
            ).value
        else { return workspace.id }
        let projectRows: [(String, String, Double, String, String, [String], Bool)] = [
            ("Sync engine", "Done", 9, "2026-01-15", "ada@example.com", ["backend"], true),
            ("Offline queue", "In progress", 8, "2026-02-01", "grace@example.com", ["backend", "infra"], false),
            ("Realtime fan-out", "In progress", 7, "2026-02-20", "linus@example.com", ["backend"], false),
            ("CLI polish", "Todo", 5, "2026-03-01", "ada@example.com", ["frontend"], false),
            ("Docs site", "Todo", 4, "2026-03-15", "grace@example.com", ["docs"], false),
            ("Benchmarks", "Done", 6, "2026-01-30", "linus@example.com", ["infra"], true),
            ("Webhooks", "Todo", 7, "2026-04-01", "ada@example.com", ["backend"], false),
            ("File storage", "In progress", 6, "2026-03-20", "grace@example.com", ["backend", "infra"], false),
        ]
        var projectIDs: [RecordID] = []
        for row in projectRows {
            let record = try await store.createRecord(
                table: projects.id,
                fields: [
                    "Name": .string(row.0), "Status": .string(row.1), "Score": .number(row.2), "Due": .string(row.3),
                    "Owner": .string(row.4), "Tags": .strings(row.5), "Shipped": .bool(row.6),
                ],
                context: context()
            )
            if let id = record.value?.id { projectIDs.append(id) }
        }
        guard
            let tasks = try await store.createTable(
                base: base.id,
                CreateTableRequest(
                    name: "Tasks",
                    fields: [
                        .init(name: "Title", type: .singleLineText),
                        .init(name: "Project", type: .multipleRecordLinks, options: .init(linkedTableID: projects.id)),
                        .init(name: "Estimate", type: .number),
                        .init(name: "Notes", type: .multilineText),
                        .init(name: "Done", type: .checkbox),
                    ]
                ),
                context: context()
            ).value
        else { return workspace.id }
        let verbs = ["Design", "Build", "Test", "Document", "Review"]
        for index in 0..<20 {
            let project = projectIDs.isEmpty ? [] : [projectIDs[index % projectIDs.count].rawValue]
            let fields: [String: FieldValue] = [
                "Title": .string("\(verbs[index % verbs.count]) step \(index + 1)"),
                "Project": .strings(project),
                "Estimate": .number(Double(1 + index % 5)),
                "Notes": .string("Sample task \(index + 1).\nCreated by pyat serve --demo."),
                "Done": .bool(index % 3 == 0),
            ]
            _ = try await store.createRecord(table: tasks.id, fields: fields, context: context())
        }
        return workspace.id
    }
}
