import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PyAirtableModels
import ReferenceServerTesting
import Synchronization
import TestSupport
import Testing

@testable import ReferenceServer

/// Runs the real reference server on an ephemeral port over a real SQLite file.
enum Harness {
    static func configuration(
        dataDirectory: String,
        clock: ManualWallClock,
        maximumBodySize: Int = 256 * 1024
    )
        -> ServerConfiguration
    {
        ServerConfiguration(
            host: "127.0.0.1",
            port: 0,
            dataDirectory: dataDirectory,
            maximumBodySize: maximumBodySize,
            auth: .init(bcryptCost: 4, throttle: .forTests),
            durableCommits: false,
            now: { clock.now }
        )
    }

    static var logger: Logger {
        var logger = Logger(label: "pyat.tests")
        logger.logLevel = .error
        return logger
    }

    /// Starts a server on `dataDirectory` and runs `body` with a client for it; `configure` adjusts
    /// the configuration first.
    ///
    /// `setup` is `.live` (a real socket on an ephemeral port) or `.router` (requests handed to the
    /// router in process, through every middleware, with no socket), for tests where the socket is
    /// not the point. Under `.router` a request has no client address, so the per-address sign-in
    /// allowance does not apply; tests of it stay `.live`.
    static func withServer<T: Sendable>(
        dataDirectory: String,
        clock: ManualWallClock = ManualWallClock(),
        maximumBodySize: Int = 256 * 1024,
        via setup: TestingSetup = .live,
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (API, ServerServices) async throws -> T
    ) async throws -> T {
        var configuration = configuration(dataDirectory: dataDirectory, clock: clock, maximumBodySize: maximumBodySize)
        configure(&configuration)
        return try await withServer(configuration: configuration, via: setup, body)
    }

    /// Starts a server with `configuration` (its data directory included) and `logger`.
    static func withServer<T: Sendable>(
        configuration: ServerConfiguration,
        logger: Logger = Harness.logger,
        via setup: TestingSetup = .live,
        _ body: @escaping @Sendable (API, ServerServices) async throws -> T
    ) async throws -> T {
        var configuration = configuration
        if Backend.current == .postgres, case .sqlite = configuration.database {
            configuration.database = .postgres(
                try await PostgresCluster.database(for: configuration.dataDirectory),
                poolSize: 4
            )
            // A few servers at a time: each holds connections, and hundreds of tests start at once.
            let postgresConfiguration = configuration
            return try await PostgresCluster.serverTurns.withTurn {
                try await run(configuration: postgresConfiguration, logger: logger, via: setup, body)
            }
        }
        return try await run(configuration: configuration, logger: logger, via: setup, body)
    }

    private static func run<T: Sendable>(
        configuration: ServerConfiguration,
        logger: Logger,
        via setup: TestingSetup,
        _ body: @escaping @Sendable (API, ServerServices) async throws -> T
    ) async throws -> T {
        let services = try await ServerServices.open(configuration: configuration, logger: logger)
        let application = Application(
            router: buildRouter(services: services),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            logger: logger
        )
        do {
            let value = try await application.test(setup) { client in
                try await body(API(client: client), services)
            }
            await services.close()
            return value
        } catch {
            await services.close()
            throw error
        }
    }

    /// Which store the server tests run on: SQLite, or with `PYAT_TEST_BACKEND=postgres` the
    /// PostgreSQL store (a database per data directory, on ``PostgresCluster``'s server), so the
    /// same suite checks both.
    enum Backend: Sendable {
        case sqlite, postgres

        static let current: Backend =
            ProcessInfo.processInfo.environment["PYAT_TEST_BACKEND"] == "postgres" ? .postgres : .sqlite
    }

    /// Starts a server on a fresh directory.
    static func withServer<T: Sendable>(
        clock: ManualWallClock = ManualWallClock(),
        maximumBodySize: Int = 256 * 1024,
        via setup: TestingSetup = .live,
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (API, ServerServices) async throws -> T
    ) async throws -> T {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        return try await withServer(
            dataDirectory: directory.path,
            clock: clock,
            maximumBodySize: maximumBodySize,
            via: setup,
            configure: configure,
            body
        )
    }
}

/// A response with its decoded error body, for assertions.
struct APIResponse: Sendable {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: Data

    func decode<T: Decodable>(_ type: T.Type, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
        do {
            return try JSONCoding.decoder.decode(type, from: body)
        } catch {
            Issue.record("could not decode \(T.self) from \(status.code): \(text)", sourceLocation: sourceLocation)
            throw error
        }
    }

    var text: String { String(decoding: body, as: UTF8.self) }

    var error: ErrorResponse? { try? JSONCoding.decoder.decode(ErrorResponse.self, from: body) }
}

/// A tiny client for the API under test.
struct API: Sendable {
    let client: any TestClientProtocol
    var token: String?

    init(client: any TestClientProtocol, token: String? = nil) {
        self.client = client
        self.token = token
    }

    func authorized(_ token: String) -> API { API(client: client, token: token) }

    @discardableResult
    func send(
        _ method: HTTPRequest.Method,
        _ path: String,
        raw: String? = nil,
        headers: HTTPFields = [:]
    ) async throws -> APIResponse {
        var headers = headers
        if let token, headers[.authorization] == nil { headers[.authorization] = "Bearer \(token)" }
        if raw != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
        let uri = path.hasPrefix("/") ? path : "/api/v1/\(path)"
        let response = try await client.executeRequest(
            uri: uri,
            method: method,
            headers: headers,
            body: raw.map { ByteBuffer(string: $0) }
        )
        return APIResponse(
            status: response.status,
            headers: response.headers,
            body: Data(response.body.readableBytesView)
        )
    }

    @discardableResult
    func send(
        _ method: HTTPRequest.Method,
        _ path: String,
        json: some Encodable,
        headers: HTTPFields = [:]
    ) async throws -> APIResponse {
        let data = try JSONCoding.encoder.encode(json)
        return try await send(method, path, raw: String(decoding: data, as: UTF8.self), headers: headers)
    }

    /// Sends and decodes, recording an issue when the status is not `expect`.
    func call<T: Decodable>(
        _ method: HTTPRequest.Method,
        _ path: String,
        json: (any Encodable)? = nil,
        expect: HTTPResponse.Status = .ok,
        as type: T.Type,
        headers: HTTPFields = [:],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> T {
        let response =
            if let json {
                try await send(method, path, json: AnyEncodable(json), headers: headers)
            } else {
                try await send(method, path, headers: headers)
            }
        #expect(response.status == expect, "\(method) \(path): \(response.text)", sourceLocation: sourceLocation)
        return try response.decode(type, sourceLocation: sourceLocation)
    }

    // MARK: Fixtures

    /// Registers a user and returns an API authorized as them.
    func register(_ name: String = "Ada", email: String? = nil) async throws -> (API, User) {
        let email = email ?? "\(name.lowercased())-\(UUID().uuidString.prefix(8))@example.com"
        let auth = try await call(
            .post,
            "auth/register",
            json: RegisterRequest(email: email, password: "correct horse", name: name),
            expect: .created,
            as: AuthResponse.self
        )
        return (authorized(auth.tokens.accessToken), auth.user)
    }

    func createWorkspace(_ name: String = "Team") async throws -> Workspace {
        try await call(
            .post,
            "workspaces",
            json: CreateWorkspaceRequest(name: name),
            expect: .created,
            as: Workspace.self
        )
    }

    func createBase(in workspace: WorkspaceID, _ name: String = "Base") async throws -> Base {
        try await call(
            .post,
            "workspaces/\(workspace)/bases",
            json: CreateBaseRequest(name: name),
            expect: .created,
            as: Base.self
        )
    }

    /// A table with Name (text), Status (select: Todo/Doing/Done), Score (number), Done (checkbox).
    func createTable(
        in base: BaseID,
        _ name: String = "Tasks",
        fields: [CreateFieldRequest]? = nil
    ) async throws
        -> PyAirtableModels.Table
    {
        let fields =
            fields ?? [
                .init(name: "Name", type: .singleLineText),
                .init(
                    name: "Status",
                    type: .singleSelect,
                    options: .init(choices: ["Todo", "Doing", "Done"].map { SelectChoice(name: $0) })
                ),
                .init(name: "Score", type: .number),
                .init(name: "Done", type: .checkbox),
            ]
        return try await call(
            .post,
            "bases/\(base)/tables",
            json: CreateTableRequest(name: name, fields: fields),
            expect: .created,
            as: PyAirtableModels.Table.self
        )
    }

    /// A workspace, base and table owned by this user.
    func scaffold() async throws -> (Workspace, Base, PyAirtableModels.Table) {
        let workspace = try await createWorkspace()
        let base = try await createBase(in: workspace.id)
        let table = try await createTable(in: base.id)
        return (workspace, base, table)
    }

    func createRecord(in table: TableID, _ fields: [String: FieldValue]) async throws -> PyAirtableModels.Record {
        try await call(
            .post,
            "tables/\(table)/records",
            json: RecordFieldsRequest(fields: fields),
            expect: .created,
            as: PyAirtableModels.Record.self
        )
    }

    func events(since: Int64 = 0) async throws -> [Event] {
        try await call(.get, "events/log?since=\(since)&limit=1000", as: EventLogPage.self).data
    }
}

/// Type-erases an `Encodable` for helpers that take any body.
struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}
