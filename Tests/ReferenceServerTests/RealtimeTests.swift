import Foundation
import HTTPTypes
import NIOWebSocket
import PyAirtableModels
import TestSupport
import Testing
import WSClient

@testable import ReferenceServer

@Suite("Realtime: WebSocket and Server-Sent Events", .timeLimit(.minutes(15)))
struct RealtimeTests {
    // MARK: WebSocket

    @Test("a subscriber gets each write's event once, and pong answers ping")
    func subscribeThenWrite() async throws {
        try await RealtimeServer.run { server in
            let (owner, _) = try await server.api.register("Ada")
            let (_, _, table) = try await owner.scaffold()
            let socket = server.socket(token: owner.token)
            defer { socket.close() }
            let head = try await socket.subscribe("s1", filters: EventFilter(tableID: table.id))
            #expect(head == (try await server.services.store.eventBounds().newest))

            let record = try await owner.createRecord(in: table.id, ["Name": .string("one")])
            let (subscription, event) = try await socket.nextEvent()
            #expect(subscription == "s1")
            #expect(event.type == .recordCreated)
            #expect(event.recordID == record.id)
            #expect(event.seq > head)
            // Nothing else was queued before the pong: the event came once.
            try await socket.expectPong()
        }
    }

    @Test("since replays exactly the missed events in order, then goes live without a gap or a repeat")
    func resumeWithSince() async throws {
        try await RealtimeServer.run { server in
            let (owner, _) = try await server.api.register("Ada")
            let (_, _, table) = try await owner.scaffold()
            let start = try await server.services.store.eventBounds().newest
            for index in 0..<5 { _ = try await owner.createRecord(in: table.id, ["Name": .string("r\(index)")]) }
            let logged = try await owner.events(since: start)
            #expect(logged.count == 5)

            // Resume after the second event, while 40 more writes race the catch-up.
            let socket = server.socket(token: owner.token)
            defer { socket.close() }
            let writer = Task {
                for index in 0..<40 { _ = try await owner.createRecord(in: table.id, ["Name": .string("w\(index)")]) }
            }
            let since = logged[1].seq
            #expect(try await socket.subscribe("s", filters: EventFilter(tableID: table.id), since: since) == since)
            try await writer.value
            let expected = try await owner.events(since: since).filter { $0.tableID == table.id }
            #expect(expected.count == 43)
            var received: [Event] = []
            while received.count < expected.count {
                received.append(try await socket.nextEvent().event)
            }
            // The JSON the hub writes by hand decodes to the very events of the log.
            #expect(received == expected)
            try await socket.expectPong()
        }
    }

    @Test("since older than the retained log answers reset at the head, then live events")
    func sinceTooOldResets() async throws {
        try await RealtimeServer.run { server in
            let (owner, _) = try await server.api.register("Ada")
            let (_, _, table) = try await owner.scaffold()
            _ = try await owner.createRecord(in: table.id, ["Name": .string("old")])
            server.clock.advance(by: 10)
            let trimmed = try await server.services.store.trimEvents(olderThan: server.clock.now)
            #expect(trimmed > 0)
            _ = try await owner.createRecord(in: table.id, ["Name": .string("kept")])
            let head = try await server.services.store.eventBounds().newest

            let socket = server.socket(token: owner.token)
            defer { socket.close() }
            #expect(try await socket.subscribe("s", since: 1) == 1)
            #expect(await socket.next() == .reset(subscription: "s", seq: head))
            let record = try await owner.createRecord(in: table.id, ["Name": .string("live")])
            let event = try await socket.nextEvent().event
            #expect(event.recordID == record.id)
            #expect(event.seq == head + 1)

            // SSE refuses the stream up front, as GET /events/log does.
            let stream = try await server.serverSentEvents(token: try #require(owner.token), query: "?since=1")
            #expect(stream.status == .gone)
            _ = await stream.blocks.next()
            let body = try JSONCoding.decoder.decode(ErrorResponse.self, from: Data(stream.body.utf8))
            #expect(body.error.type == .resyncRequired)
        }
    }

    @Test("filters narrow a subscription to a table or a record")
    func filters() async throws {
        try await RealtimeServer.run { server in
            let (owner, _) = try await server.api.register("Ada")
            let (_, base, table) = try await owner.scaffold()
            let other = try await owner.createTable(in: base.id, "Other")
            let watched = try await owner.createRecord(in: table.id, ["Name": .string("watched")])
            let socket = server.socket(token: owner.token)
            defer { socket.close() }
            try await socket.subscribe("table", filters: EventFilter(tableID: table.id))
            try await socket.subscribe("record", filters: EventFilter(recordID: watched.id))

            _ = try await owner.createRecord(in: other.id, ["Name": .string("elsewhere")])
            let sibling = try await owner.createRecord(in: table.id, ["Name": .string("sibling")])
            _ = try await owner.send(
                .patch,
                "records/\(watched.id)",
                json: RecordFieldsRequest(fields: ["Score": .number(3)])
            )

            let first = try await socket.nextEvent()
            #expect(first.subscription == "table" && first.event.recordID == sibling.id)
            let second = try await socket.nextEvent()
            let third = try await socket.nextEvent()
            #expect(Set([second.subscription, third.subscription]) == ["table", "record"])
            #expect(second.event == third.event)
            #expect(second.event.type == .recordUpdated && second.event.recordID == watched.id)
            try await socket.expectPong()
        }
    }

    @Test("a non-member never sees a workspace's events; a removed member stops at the removal")
    func accessControl() async throws {
        try await RealtimeServer.run { server in
            let (owner, _) = try await server.api.register("Ada")
            let (viewer, viewerUser) = try await server.api.register("Bob")
            let (workspace, _, table) = try await owner.scaffold()
            let socket = server.socket(token: viewer.token)
            defer { socket.close() }
            try await socket.subscribe("all")

            // Not a member yet: nothing of the workspace arrives. Bob's own workspace is the next event.
            _ = try await owner.createRecord(in: table.id, ["Name": .string("secret")])
            let own = try await viewer.createWorkspace("Bob's")
            var event = try await socket.nextEvent().event
            #expect(event.type == .workspaceCreated && event.workspaceID == own.id)
            while event.workspaceID == own.id, event.type != .memberAdded || true {
                // Skip the rest of Bob's own workspace creation, if it logs more than one event.
                guard let frame = await socket.next(timeout: .milliseconds(300)) else { break }
                guard case .event(_, let next) = frame else { break }
                #expect(
                    next.workspaceID == own.id,
                    "unexpected event \(next.type) of \(String(describing: next.workspaceID))"
                )
                event = next
            }

            // Added: Bob sees the addition and what follows.
            _ = try await owner.call(
                .post,
                "workspaces/\(workspace.id)/members",
                json: AddMemberRequest(userID: viewerUser.id, role: .viewer),
                expect: .created,
                as: Member.self
            )
            #expect(try await socket.nextEvent().event.type == .memberAdded)
            let visible = try await owner.createRecord(in: table.id, ["Name": .string("visible")])
            #expect(try await socket.nextEvent().event.recordID == visible.id)

            // Removed: Bob sees his removal, then nothing more of the workspace.
            let removal = try await owner.send(.delete, "workspaces/\(workspace.id)/members/\(viewerUser.id)")
            #expect(removal.status == .noContent || removal.status == .ok)
            let removed = try await socket.nextEvent().event
            #expect(removed.type == .memberRemoved)
            _ = try await owner.createRecord(in: table.id, ["Name": .string("after removal")])
            let renamed = try await viewer.send(
                .patch,
                "workspaces/\(own.id)",
                json: UpdateWorkspaceRequest(name: "Renamed")
            )
            #expect(renamed.status == .ok)
            let next = try await socket.nextEvent().event
            #expect(next.type == .workspaceUpdated && next.workspaceID == own.id)
        }
    }

    @Test("unsubscribe and close free the hub's state")
    func unsubscribeAndCloseFreeState() async throws {
        try await RealtimeServer.run { server in
            let (owner, _) = try await server.api.register("Ada")
            let socket = server.socket(token: owner.token)
            try await socket.subscribe("a")
            try await socket.subscribe("b")
            #expect(await server.hub.connectionCount == 1)
            #expect(await server.hub.subscriptionCount == 2)
            try socket.send(.unsubscribe(id: "a"))
            // Frames are handled in order: once pong is back, the unsubscribe was applied.
            try await socket.expectPong()
            #expect(await server.hub.subscriptionCount == 1)
            socket.close()
            try await server.eventually("the connection to be forgotten") { await $0.connectionCount == 0 }
            #expect(await server.hub.subscriptionCount == 0)
        }
    }

    @Test("client frames are handled in the order sent, even when sent back to back")
    func framesInOrder() async throws {
        try await RealtimeServer.run { server in
            let (owner, _) = try await server.api.register("Ada")
            let socket = server.socket(token: owner.token)
            defer { socket.close() }
            for _ in 0..<50 {
                try socket.send(.subscribe(id: "a", channel: "events", filters: EventFilter(), since: nil))
                try socket.send(.unsubscribe(id: "a"))
            }
            try socket.send(.ping)
            var subscribed = 0
            while let frame = await socket.next() {
                if frame == .pong { break }
                guard case .subscribed("a", _) = frame else {
                    Issue.record("out of order: \(frame)")
                    break
                }
                subscribed += 1
            }
            #expect(subscribed == 50, "each subscribe after its unsubscribe, none refused as a duplicate")
            #expect(await server.hub.subscriptionCount == 0)
        }
    }

    @Test("a consumer that never reads is cut off; another subscriber still gets every event", .heavy)
    func slowConsumer() async throws {
        let realtime = RealtimeConfiguration(bufferSize: 4, closeTimeout: .milliseconds(200))
        try await RealtimeServer.run(realtime: realtime, maximumBodySize: 1 << 20) { server in
            let (owner, _) = try await server.api.register("Ada")
            let (_, _, table) = try await owner.scaffold()
            let slow = server.socket(token: owner.token, reading: false)
            defer { slow.cancel() }
            try slow.send(
                .subscribe(id: "slow", channel: "events", filters: EventFilter(tableID: table.id), since: nil)
            )
            let fast = server.socket(token: owner.token)
            defer { fast.close() }
            try await fast.subscribe("fast", filters: EventFilter(tableID: table.id))
            try await server.eventually("both connections to subscribe") { await $0.subscriptionCount == 2 }

            // Large events fill the socket buffers of the consumer that does not read, then its outbox.
            let text = String(repeating: "x", count: 64 * 1024)
            var written = 0
            var seqs: [Int64] = []
            while await server.hub.connectionCount == 2, written < 1000 {
                let fastCount = seqs.count
                _ = try await owner.createRecord(in: table.id, ["Name": .string(text)])
                written += 1
                // Read as we go so the fast consumer never falls behind itself.
                while seqs.count < fastCount + 1 {
                    seqs.append(try await fast.nextEvent().event.seq)
                }
            }
            #expect(await server.hub.connectionCount == 1, "the slow consumer was never cut off")
            #expect(server.services.metrics.exposition().contains("pyat_realtime_slow_consumer_disconnects_total 1"))
            // The fast subscriber missed nothing.
            let logged = try await owner.events(since: 0).filter { $0.type == .recordCreated }.map(\.seq)
            #expect(seqs == logged)
            try await fast.expectPong()
        }
    }

    @Test("the upgrade authenticates by header or access_token; failures say why")
    func webSocketAuthentication() async throws {
        try await RealtimeServer.run { server in
            let (owner, _) = try await server.api.register("Ada")
            let token = try #require(owner.token)

            let unauthenticated = try await server.api.send(.get, "ws")
            #expect(unauthenticated.status == .unauthorized)
            #expect(unauthenticated.error?.error.type == .auth)
            let notUpgrade = try await owner.send(.get, "ws")
            #expect(notUpgrade.status == .upgradeRequired)

            let refused = server.socket(token: "not-a-token")
            try refused.send(.ping)
            let frame = await refused.next()
            guard case .error(_, let error) = frame else {
                Issue.record("expected an error frame, got \(String(describing: frame))")
                return
            }
            #expect(error.type == .auth && error.code == 401)
            let close = await refused.closed.next()
            #expect(close??.closeCode == .unknown(4401))

            let byQuery = server.socket(token: nil, query: "?access_token=\(token)")
            defer { byQuery.close() }
            try await byQuery.subscribe("q")
            try await byQuery.expectPong()
        }
    }

    @Test("a connection that sends nothing for the idle timeout is dropped")
    func idleTimeout() async throws {
        let realtime = RealtimeConfiguration(idleTimeout: .seconds(3))
        try await RealtimeServer.run(realtime: realtime) { server in
            let (owner, _) = try await server.api.register("Ada")
            // The client stays silent (and this client answers no pings): the server hangs up. The
            // connection's end is awaited on the socket itself, so a loaded machine that opens it late
            // (or a hub that forgets it quickly) cannot make the test miss it.
            let started = ContinuousClock.now
            let socket = server.socket(token: owner.token)
            defer { socket.cancel() }
            let ended = await socket.closed.next(timeout: .seconds(45))
            #expect(ended != nil, "the server hung up on the silent connection")
            #expect(ContinuousClock.now - started >= .seconds(3), "not before the idle timeout")
            try await server.eventually(timeout: .seconds(20), "the idle connection to be forgotten") {
                await $0.connectionCount == 0
            }
        }
    }

    @Test("an access token expiring mid-stream ends the WebSocket (4401) and the SSE stream (AUTH_ERROR)")
    func credentialExpiry() async throws {
        try await RealtimeServer.run(accessTokenLifetime: 8) { server in
            let (owner, _) = try await server.api.register("Ada")
            let socket = server.socket(token: owner.token)
            try await socket.subscribe("s")
            guard case .error(_, let error) = await socket.next() else {
                Issue.record("expected an error frame when the token expired")
                return
            }
            #expect(error.type == .auth)
            let close = await socket.closed.next()
            #expect(close??.closeCode == .unknown(4401))

            let stream = try await server.serverSentEvents(token: try #require(owner.token))
            defer { stream.cancel() }
            var last: ServerSentBlock?
            while let block = await stream.blocks.next() { last = block }
            #expect(last?.event == "error")
            let body = try JSONCoding.decoder.decode(ErrorResponse.self, from: Data((last?.data ?? "").utf8))
            #expect(body.error.type == .auth)
        }
    }

    @Test("bad client frames get an error frame and the connection stays up")
    func badFrames() async throws {
        try await RealtimeServer.run { server in
            let (owner, _) = try await server.api.register("Ada")
            let socket = server.socket(token: owner.token)
            defer { socket.close() }
            socket.sendRaw("{\"type\":\"dance\"}")
            guard case .error(_, let error) = await socket.next() else {
                Issue.record("expected an error frame")
                return
            }
            #expect(error.type == .validation)
            try await socket.subscribe("s")
            try socket.send(.subscribe(id: "s", channel: "events", filters: EventFilter(), since: nil))
            guard case .error(let subscription, _) = await socket.next() else {
                Issue.record("expected an error frame for the duplicate subscription")
                return
            }
            #expect(subscription == "s")
            try await socket.expectPong()
        }
    }

    // MARK: Server-Sent Events

    @Test("SSE opens with a comment, resumes from Last-Event-ID over since, streams live, heartbeats")
    func serverSentEvents() async throws {
        let realtime = RealtimeConfiguration(heartbeatInterval: .milliseconds(50))
        try await RealtimeServer.run(realtime: realtime) { server in
            let (owner, _) = try await server.api.register("Ada")
            let (_, _, table) = try await owner.scaffold()
            let start = try await server.services.store.eventBounds().newest
            for index in 0..<3 { _ = try await owner.createRecord(in: table.id, ["Name": .string("r\(index)")]) }
            let logged = try await owner.events(since: start)

            let stream = try await server.serverSentEvents(
                token: try #require(owner.token),
                query: "?table_id=\(table.id)&since=0",
                lastEventID: String(logged[0].seq)
            )
            defer { stream.cancel() }
            #expect(stream.status == .ok)
            #expect(stream.contentType?.hasPrefix("text/event-stream") == true)
            let opening = await stream.blocks.next()
            #expect(opening?.comments.isEmpty == false && opening?.event == nil)

            for expected in logged.dropFirst() {
                let (block, event) = try await stream.nextEvent()
                #expect(block.id == String(expected.seq))
                #expect(block.event == expected.type.rawValue)
                #expect(event == expected)
            }
            let record = try await owner.createRecord(in: table.id, ["Name": .string("live")])
            let (_, live) = try await stream.nextEvent()
            #expect(live.recordID == record.id)

            var heartbeat = false
            while !heartbeat, let block = await stream.blocks.next() {
                heartbeat = block.comments.contains("heartbeat")
            }
            #expect(heartbeat)
        }
    }

    @Test("SSE without since starts at the head; a non-member sees nothing of the workspace")
    func serverSentEventsAccess() async throws {
        try await RealtimeServer.run { server in
            let (owner, _) = try await server.api.register("Ada")
            let (stranger, _) = try await server.api.register("Eve")
            let (_, _, table) = try await owner.scaffold()
            _ = try await owner.createRecord(in: table.id, ["Name": .string("before")])
            let stream = try await server.serverSentEvents(token: try #require(stranger.token))
            defer { stream.cancel() }
            #expect(stream.status == .ok)
            try await server.eventually("the stream to subscribe") { await $0.subscriptionCount == 1 }
            _ = try await owner.createRecord(in: table.id, ["Name": .string("secret")])
            let own = try await stranger.createWorkspace("Eve's")
            let (_, event) = try await stream.nextEvent()
            #expect(event.workspaceID == own.id)

            let unauthenticated = try await server.api.send(.get, "events")
            #expect(unauthenticated.status == .unauthorized)
        }
    }
}

@Suite("Realtime fan-out", .heavy, .timeLimit(.minutes(15)))
struct RealtimeFanOutTests {
    @Test("one write reaches every one of many subscribers, once")
    func fanOut() async throws {
        let count = ProcessInfo.processInfo.environment["PYAT_FANOUT_SUBSCRIBERS"].flatMap(Int.init) ?? 100
        // Every subscriber is the same user: the per-user connection limit must let them all in.
        let realtime = RealtimeConfiguration(maximumConnectionsPerUser: count)
        try await RealtimeServer.run(realtime: realtime) { server in
            let (owner, _) = try await server.api.register("Ada")
            let (_, _, table) = try await owner.scaffold()
            let sockets = (0..<count).map { _ in server.socket(token: owner.token) }
            defer { for socket in sockets { socket.close() } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for socket in sockets {
                    group.addTask { try await socket.subscribe("s", filters: EventFilter(tableID: table.id)) }
                }
                try await group.waitForAll()
            }
            var latencies: [Duration] = []
            for round in 0..<5 {
                let start = ContinuousClock.now
                let record = try await owner.createRecord(in: table.id, ["Name": .string("r\(round)")])
                let arrivals = try await withThrowingTaskGroup(of: (RecordID?, Duration).self) { group in
                    for socket in sockets {
                        group.addTask {
                            let event = try await socket.nextEvent().event
                            return (event.recordID, ContinuousClock.now - start)
                        }
                    }
                    var arrivals: [(RecordID?, Duration)] = []
                    for try await arrival in group { arrivals.append(arrival) }
                    return arrivals
                }
                #expect(arrivals.allSatisfy { $0.0 == record.id })
                latencies.append(contentsOf: arrivals.map(\.1))
            }
            latencies.sort()
            let p50 = latencies[latencies.count / 2]
            let p99 = latencies[min(latencies.count - 1, latencies.count * 99 / 100)]
            if ProcessInfo.processInfo.environment["PYAT_FANOUT_SUBSCRIBERS"] != nil {
                print("fan-out to \(count): p50 \(p50), p99 \(p99) (write to arrival, including the write)")
            }
            for socket in sockets { try await socket.expectPong() }
        }
    }
}
