import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PyAirtableClient
import PyAirtableModels
import Synchronization
import Testing

/// The client side of the cluster fault drills: the real SDK writing and subscribing as an
/// application would, a ledger of what it was told, and the checks run once the fault is over.
///
/// Every write is a create (`Score` 1, version 1) then an update with `If-Match` (`Score` 2,
/// version 2) of a record named by a marker no other write uses, so afterwards each record says
/// what was applied: a marker twice is a create applied twice, a version past 2 (or a `Score` that
/// differs from the version) an update applied twice.
enum Drill {
    static var quietLogger: Logger {
        var logger = Logger(label: "pyat.drill")
        logger.logLevel = .critical
        return logger
    }

    /// A client configured as an application behind a load balancer would be: the SDK's retries (with
    /// the request's idempotency key) ride out a dead instance or a database restart, and the circuit
    /// breaker, after opening, probes again within a second rather than the default 30 s, so the drill
    /// sees writes resume as soon as the cluster can take them.
    static func configuration(_ url: URL, token: String?) -> PyAirtableClient.Configuration {
        PyAirtableClient.Configuration(
            serverURL: url,
            credentials: token.map { .personalAccessToken($0) } ?? .none,
            timeouts: .init(connect: .seconds(5), request: .seconds(30)),
            retry: RetryPolicy(maximumRetries: 8, baseDelay: .milliseconds(100), maximumDelay: .seconds(2)),
            circuitBreaker: CircuitBreakerPolicy(failureThreshold: 5, resetTimeout: .seconds(1)),
            logger: quietLogger
        )
    }

    /// Realtime as the SDK does it by default, with shorter waits: a reconnect after a lost instance
    /// starts within a second, and a fallback transport goes back up to WebSocket after 5 s.
    static let realtimeSettings = RealtimeSettings(
        initialBackoff: .milliseconds(100),
        maximumBackoff: .seconds(1),
        upgradeInterval: .seconds(5),
        pingInterval: .seconds(5),
        updatesCache: false
    )

    /// Registers a user and makes a table (`Name` text, `Score` number) through `url`; answers the
    /// user's access token and the table.
    static func scaffold(through url: URL) async throws -> (token: String, table: TableID) {
        try await withPyAirtableClient(configuration: configuration(url, token: nil)) { anonymous in
            let email = "drill-\(UUID().uuidString.prefix(8).lowercased())@example.com"
            let auth = try await anonymous.auth.register(email: email, password: "correct horse", name: "Drill")
            let token = auth.tokens.accessToken
            return try await withPyAirtableClient(configuration: configuration(url, token: token)) { client in
                let workspace = try await client.workspaces.create(name: "Drill")
                let base = try await client.bases.create(in: workspace.id, name: "Drill")
                let table = try await client.tables.create(
                    in: base.id,
                    name: "Writes",
                    fields: [.init(name: "Name", type: .singleLineText), .init(name: "Score", type: .number)]
                )
                return (token, table.id)
            }
        }
    }

    // MARK: Writing

    /// Runs `count` writers through `url` (each with a client of its own) while `scenario` runs,
    /// then stops them: each finishes the write it is in, for 30 s at most; past that they are
    /// cancelled (a hung cluster must not hang the test), and what they were writing counts as unknown.
    static func withWriters<T: Sendable>(
        _ count: Int,
        through url: URL,
        token: String,
        table: TableID,
        ledger: WriteLedger,
        during scenario: () async throws -> T
    ) async throws -> T {
        let stop = SetOnceFlag()
        let finished = SetOnceFlag()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskGroup(of: Void.self) { writers in
                    for writer in 0..<count {
                        writers.addTask {
                            try? await withPyAirtableClient(configuration: configuration(url, token: token)) { client in
                                await write(writer: writer, client: client, table: table, ledger: ledger, stop: stop)
                            }
                        }
                    }
                }
                finished.set()
            }
            let outcome: Result<T, any Error>
            do {
                outcome = .success(try await scenario())
            } catch {
                outcome = .failure(error)
            }
            stop.set()
            let stopped = try await eventually(within: .seconds(30)) { finished.isSet }
            if !stopped {
                Issue.record("the writers did not finish their writes within 30 s of being stopped: cancelled")
            }
            group.cancelAll()
            try await group.waitForAll()
            return try outcome.get()
        }
    }

    /// One writer: creates then updates records, one marker each, noting every answer. A write the
    /// SDK gave up on is not sent again under its marker (its outcome is unknown); the next one starts.
    private static func write(
        writer: Int,
        client: PyAirtableClient,
        table: TableID,
        ledger: WriteLedger,
        stop: SetOnceFlag
    ) async {
        var index = 0
        while !stop.isSet, !Task.isCancelled {
            index += 1
            let marker = "w\(writer)-\(index)"
            ledger.attempt(marker)
            do {
                let created = try await ledger.timed {
                    try await client.records.create(in: table, fields: ["Name": .string(marker), "Score": .number(1)])
                        .get()
                }
                ledger.acknowledge(marker, writer: writer, record: created)
                let updated = try await ledger.timed {
                    // `.fail`: a 412 here could only mean a retry was taken for a new write.
                    try await client.records.update(
                        created.id,
                        fields: ["Score": .number(2)],
                        ifVersion: created.version,
                        onConflict: .fail
                    ).get()
                }
                ledger.acknowledge(marker, writer: writer, record: updated)
            } catch {
                ledger.fail(marker, error)
                if Task.isCancelled { return }
                // A breaker that opened answers at once: do not spin on it.
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    // MARK: Reading back

    /// Every record of `table`, read through `url` (one instance: what it serves is the database).
    static func records(of table: TableID, through url: URL, token: String) async throws -> [Record] {
        try await withPyAirtableClient(configuration: configuration(url, token: token)) { client in
            var records: [Record] = []
            for try await record in client.records.all(in: table, query: RecordQuery(pageSize: 1000)) {
                records.append(record)
            }
            return records
        }
    }

    /// The event log of `table` after `since`, read through `url`.
    static func eventLog(of table: TableID, since: Int64, through url: URL, token: String) async throws -> [Event] {
        var events: [Event] = []
        var since = since
        while true {
            let response = try await get(
                url.absoluteString + "/api/v1/events/log?since=\(since)&table_id=\(table)&limit=1000",
                token: token
            )
            guard response.status == 200 else {
                throw ClusterInstanceError(message: "GET /events/log answered \(response.status): \(response.text)")
            }
            let page = try JSONCoding.decoder.decode(EventLogPage.self, from: response.body)
            if page.data.isEmpty { return events }
            events += page.data
            since = page.nextSince
        }
    }

    /// The realtime connections (WebSocket and SSE) an instance holds, from its `/metrics`.
    static func realtimeConnections(port: Int) async throws -> Int {
        let response = try await get("http://127.0.0.1:\(port)/metrics", token: nil)
        for line in response.text.split(separator: "\n") where line.hasPrefix("pyat_realtime_connections ") {
            return Int(Double(line.split(separator: " ").last ?? "") ?? 0)
        }
        return 0
    }

    /// An answer read whole, for checks.
    struct RawResponse: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: Data
        var elapsed: Duration
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// One request, no retries (AsyncHTTPClient, not the SDK): what one attempt is answered.
    static func request(
        _ method: HTTPMethod,
        _ url: String,
        token: String?,
        json: String? = nil,
        timeout: Duration = .seconds(60),
        client: HTTPClient = .shared
    ) async throws -> RawResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let started = ContinuousClock.now
        let response = try await client.execute(request, timeout: .init(timeout))
        let body = try await response.body.collect(upTo: 64 << 20)
        return RawResponse(
            status: Int(response.status.code),
            headers: response.headers,
            body: Data(body.readableBytesView),
            elapsed: ContinuousClock.now - started
        )
    }

    static func get(_ url: String, token: String?) async throws -> RawResponse {
        try await request(.GET, url, token: token)
    }

    /// Whether `condition` holds within `limit`, asked every 50 ms.
    static func eventually(
        within limit: Duration,
        _ condition: () async throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while true {
            if try await condition() { return true }
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    // MARK: Checks

    /// Checks the table and its event log against the ledger: every acknowledged write is there with
    /// its acknowledged version, nothing was applied twice, and the log holds exactly one event per
    /// applied write.
    static func expectConsistent(
        records: [Record],
        events: [Event],
        ledger: WriteLedger,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let written = ledger.snapshot
        var byMarker: [String: [Record]] = [:]
        for record in records {
            guard case .string(let marker)? = record.fields["Name"] else {
                Issue.record("a record without a marker: \(record)", sourceLocation: sourceLocation)
                continue
            }
            byMarker[marker, default: []].append(record)
        }
        for (marker, copies) in byMarker {
            #expect(copies.count == 1, "\(marker) was created \(copies.count) times", sourceLocation: sourceLocation)
            #expect(written.attempted.contains(marker), "\(marker) was never written", sourceLocation: sourceLocation)
            for record in copies {
                #expect(
                    (1...2).contains(record.version) && record.fields["Score"] == .number(Double(record.version)),
                    "\(marker): version \(record.version), Score \(String(describing: record.fields["Score"]))",
                    sourceLocation: sourceLocation
                )
            }
        }
        for (marker, acknowledged) in written.acknowledged {
            guard let record = byMarker[marker]?.first else {
                Issue.record("\(marker) was acknowledged but is missing", sourceLocation: sourceLocation)
                continue
            }
            #expect(record.id == acknowledged.id, "\(marker)", sourceLocation: sourceLocation)
            // A write that failed after the acknowledged one may or may not have been applied.
            if written.uncertain.contains(marker) {
                #expect(record.version >= acknowledged.version, "\(marker)", sourceLocation: sourceLocation)
            } else {
                #expect(
                    record.version == acknowledged.version,
                    "\(marker) was acknowledged at version \(acknowledged.version), is at \(record.version)",
                    sourceLocation: sourceLocation
                )
            }
        }
        var logged: [RecordID: (created: Int, updated: Int)] = [:]
        for event in events {
            guard let id = event.recordID else {
                Issue.record("an event of the table without a record: \(event.type)", sourceLocation: sourceLocation)
                continue
            }
            switch event.type {
            case .recordCreated: logged[id, default: (0, 0)].created += 1
            case .recordUpdated: logged[id, default: (0, 0)].updated += 1
            default: Issue.record("unexpected event \(event.type)", sourceLocation: sourceLocation)
            }
        }
        #expect(Set(logged.keys) == Set(records.map(\.id)), sourceLocation: sourceLocation)
        for record in records {
            let counts = logged[record.id] ?? (0, 0)
            #expect(
                counts.created == 1 && counts.updated == record.version - 1,
                "\(record.id) at version \(record.version) has \(counts.created) created, \(counts.updated) updated",
                sourceLocation: sourceLocation
            )
        }
        #expect(events.map(\.seq) == events.map(\.seq).sorted(), sourceLocation: sourceLocation)
        // With no concurrent writer on a record, a 412 means a retry was taken for another request.
        #expect(written.preconditionFailures == 0, sourceLocation: sourceLocation)
    }

    /// With `PYAT_DRILL_VERBOSE` set, prints what a drill saw: writes acknowledged and failed (after
    /// the SDK's retries), the longest call, each subscriber's events and reconnects.
    static func report(_ drill: String, ledger: WriteLedger, subscribers: [DrillSubscriber]) {
        guard ProcessInfo.processInfo.environment["PYAT_DRILL_VERBOSE"] != nil else { return }
        let written = ledger.snapshot
        let seen = subscribers.map { "\($0.name): \($0.received.events.count) events, \($0.reconnects) reconnects" }
        print(
            """
            [\(drill)] \(written.acknowledgements) acknowledged, \(written.failures.count) failed \
            \(written.failures.prefix(8)), longest call \(written.longestCall); \(seen.joined(separator: "; "))
            """
        )
    }

    /// Waits (bounded) until every subscriber is connected by WebSocket, its first choice.
    static func expectConnected(
        _ subscribers: [DrillSubscriber],
        within limit: Duration = .seconds(60),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let deadline = ContinuousClock.now + limit
        for subscriber in subscribers {
            let connected = try await eventually(within: max(.zero, deadline - .now)) {
                subscriber.isConnectedByWebSocket
            }
            #expect(connected, "\(subscriber.name) did not connect by WebSocket", sourceLocation: sourceLocation)
        }
    }

    /// Waits (bounded) until every subscriber has the log's last event, then checks each got exactly
    /// the log: every event once, in seq order, none missing.
    static func expectDelivered(
        _ events: [Event],
        to subscribers: [DrillSubscriber],
        within limit: Duration = .seconds(60),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let expected = events.map(\.seq)
        guard let last = expected.last else {
            Issue.record("the drill logged no events", sourceLocation: sourceLocation)
            return
        }
        let deadline = ContinuousClock.now + limit
        for subscriber in subscribers {
            let caughtUp = try await subscriber.waitUntil(seq: last, within: max(.zero, deadline - .now))
            let received = subscriber.received
            #expect(
                caughtUp,
                "\(subscriber.name) is at seq \(received.events.last?.seq ?? -1), the log at \(last)",
                sourceLocation: sourceLocation
            )
            let seqs = received.events.map(\.seq)
            #expect(
                received.failure == nil,
                "\(subscriber.name): \(received.failure ?? "")",
                sourceLocation: sourceLocation
            )
            #expect(received.resets == 0, "\(subscriber.name) was reset", sourceLocation: sourceLocation)
            if seqs != expected {
                let missing = Set(expected).subtracting(seqs).sorted()
                let duplicates = Dictionary(grouping: seqs, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
                let ordered = seqs == seqs.sorted()
                Issue.record(
                    """
                    \(subscriber.name) got \(seqs.count) events, the log has \(expected.count): missing \
                    \(missing.prefix(20)), duplicated \(duplicates.prefix(20)), in order: \(ordered), \
                    unexpected \(Set(seqs).subtracting(expected).sorted().prefix(20))
                    """,
                    sourceLocation: sourceLocation
                )
            }
        }
    }
}

/// A flag set once (writers stop, writers finished), read by any task.
final class SetOnceFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}

/// What the writers were told: each marker attempted, the last acknowledged version of each, which
/// markers had a write end in an error (its outcome unknown), and how long calls took.
final class WriteLedger: Sendable {
    struct Acknowledged: Sendable {
        var writer: Int
        var id: RecordID
        var version: Int
        var at: ContinuousClock.Instant
    }

    struct Snapshot: Sendable {
        var attempted: Set<String> = []
        var acknowledged: [String: Acknowledged] = [:]
        var uncertain: Set<String> = []
        /// Each failed write: the marker and the error, in order.
        var failures: [String] = []
        var preconditionFailures = 0
        var acknowledgements = 0
        var longestCall: Duration = .zero
    }

    private let state = Mutex(Snapshot())

    var snapshot: Snapshot { state.withLock { $0 } }

    var acknowledgements: Int { state.withLock { $0.acknowledgements } }

    func attempt(_ marker: String) {
        state.withLock { _ = $0.attempted.insert(marker) }
    }

    func acknowledge(_ marker: String, writer: Int, record: Record) {
        state.withLock { state in
            state.acknowledged[marker] = Acknowledged(
                writer: writer,
                id: record.id,
                version: record.version,
                at: .now
            )
            state.acknowledgements += 1
        }
    }

    func fail(_ marker: String, _ error: any Error) {
        state.withLock { state in
            state.uncertain.insert(marker)
            let kind = (error as? PyAirtableError).map { "\($0.shortDescription) \($0.status.map(String.init) ?? "")" }
            state.failures.append("\(marker): \(kind ?? "\(error)")")
            if let error = error as? PyAirtableError, error == .preconditionFailed { state.preconditionFailures += 1 }
        }
    }

    /// Runs one SDK call (its retries included), noting how long it took.
    func timed<T>(_ call: () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        defer {
            let elapsed = ContinuousClock.now - started
            state.withLock { $0.longestCall = max($0.longestCall, elapsed) }
        }
        return try await call()
    }

    /// The writers that had a write acknowledged after `instant`.
    func writersAcknowledged(after instant: ContinuousClock.Instant) -> Set<Int> {
        state.withLock { state in Set(state.acknowledged.values.filter { $0.at > instant }.map(\.writer)) }
    }
}

/// A realtime subscriber: the SDK's ``RealtimeClient`` (a connection of its own) subscribed to a
/// table's events from a seq, keeping every update it is handed.
final class DrillSubscriber: Sendable {
    struct Received: Sendable {
        var events: [Event] = []
        var resets = 0
        var failure: String?
    }

    let name: String
    private let realtime: RealtimeClient
    private let inbox: Inbox
    private let task: Task<Void, Never>

    private final class Inbox: Sendable {
        let state = Mutex(Received())
    }

    init(name: String, client: PyAirtableClient, table: TableID, since: Int64) {
        self.name = name
        let realtime = RealtimeClient(client: client, configuration: Drill.realtimeSettings)
        let inbox = Inbox()
        let updates = realtime.subscribe(EventFilter(tableID: table), since: since)
        self.realtime = realtime
        self.inbox = inbox
        task = Task {
            do {
                for try await update in updates {
                    switch update {
                    case .event(let event): inbox.state.withLock { $0.events.append(event) }
                    case .reset: inbox.state.withLock { $0.resets += 1 }
                    }
                }
            } catch {
                inbox.state.withLock { $0.failure = "\(error)" }
            }
        }
    }

    var received: Received { inbox.state.withLock { $0 } }

    var isConnectedByWebSocket: Bool { realtime.connectionState == .connected(.webSocket) }

    /// How many times the connection was established again after it dropped.
    var reconnects: Int { realtime.statistics.reconnects }

    /// Whether the subscriber was handed `seq` (or a later event) within `limit`.
    func waitUntil(seq: Int64, within limit: Duration) async throws -> Bool {
        try await Drill.eventually(within: limit) { (received.events.last?.seq ?? .min) >= seq }
    }

    func close() async {
        await realtime.close()
        await task.value
    }
}

/// The clients of a drill, shut down on every path: one per server URL, and the subscribers made on them.
final class DrillClients: Sendable {
    let token: String
    private let state = Mutex<(clients: [URL: PyAirtableClient], subscribers: [DrillSubscriber])>(([:], []))

    private init(token: String) {
        self.token = token
    }

    /// Runs `body` with the drill's clients, then closes every subscriber and client.
    static func with<T: Sendable>(token: String, _ body: (DrillClients) async throws -> T) async throws -> T {
        let clients = DrillClients(token: token)
        do {
            let value = try await body(clients)
            await clients.close()
            return value
        } catch {
            await clients.close()
            throw error
        }
    }

    /// The client for `url`, made on first use.
    func client(_ url: URL) -> PyAirtableClient {
        state.withLock { state in
            if let client = state.clients[url] { return client }
            let client = PyAirtableClient(configuration: Drill.configuration(url, token: token))
            state.clients[url] = client
            return client
        }
    }

    /// A subscriber to `table`'s events after `since`, connected through `url`.
    func subscribe(_ name: String, through url: URL, table: TableID, since: Int64) -> DrillSubscriber {
        let subscriber = DrillSubscriber(name: name, client: client(url), table: table, since: since)
        state.withLock { $0.subscribers.append(subscriber) }
        return subscriber
    }

    private func close() async {
        let (clients, subscribers) = state.withLock { state in
            defer { state = ([:], []) }
            return (Array(state.clients.values), state.subscribers)
        }
        for subscriber in subscribers { await subscriber.close() }
        for client in clients { try? await client.shutdown() }
    }
}
