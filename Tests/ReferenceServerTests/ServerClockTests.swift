import Foundation
import HTTPTypes
import PyAirtableModels
import PyAirtableTesting
import TestSupport
import Testing

@testable import ReferenceServer

/// The server's waits run on the configuration's clock: tests move it instead of waiting.
@Suite("Server waits on the injected clock", .timeLimit(.minutes(2)))
struct ServerClockTests {
    @Test func maintenancePassesRunEachIntervalOfTheClock() async throws {
        let wall = ManualWallClock()
        let clock = TestClock()
        let directory = try TemporaryDirectory()
        var configuration = Harness.configuration(dataDirectory: directory.path, clock: wall)
        configuration.clock = clock
        configuration.eventRetention = 3600
        let services = try await ServerServices.open(configuration: configuration, logger: Harness.logger)
        let store = services.store
        let user = try #require(
            try await store.createUser(
                email: "ada@example.com",
                name: "Ada",
                passwordHash: "not-a-real-hash",
                context: WriteContext(actor: nil, now: wall.now)
            ).value
        ).id
        _ = try await store.createWorkspace(
            CreateWorkspaceRequest(name: "Team"),
            context: WriteContext(actor: user, now: wall.now)
        )
        let written = try await store.events(since: 0, filter: EventFilter(), limit: 100, user: user)
        #expect(!written.data.isEmpty)

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await MaintenanceService(services: services).run() }
            // The first pass runs at once; then the service waits one interval on the clock.
            await clock.waitForSleepers(1)
            #expect(clock.pendingDurations() == [MaintenanceService.interval])
            // The events were fresh at that pass: all still there.
            let kept = try await store.events(since: 0, filter: EventFilter(), limit: 100, user: user)
            #expect(kept.data.map(\.seq) == written.data.map(\.seq))

            // Two hours on, less than an interval of the clock: no pass yet.
            wall.advance(by: 2 * 3600)
            clock.advance(by: MaintenanceService.interval - .seconds(1))
            #expect(clock.sleepers() == 1)
            let notYet = try await store.events(since: 0, filter: EventFilter(), limit: 100, user: user)
            #expect(notYet.data.map(\.seq) == written.data.map(\.seq))

            // The interval ends: the second pass trims the events past retention, then waits again.
            clock.advance(by: .seconds(1))
            await clock.waitForSleepers(1)
            #expect(clock.requestedSleeps() == [MaintenanceService.interval, MaintenanceService.interval])
            let trimmed = await #expect(throws: StorageError.self) {
                try await store.events(since: 0, filter: EventFilter(), limit: 100, user: user)
            }
            guard case .eventsTrimmed(since: 0, _)? = trimmed else {
                Issue.record("expected the log to be trimmed, got \(String(describing: trimmed))")
                group.cancelAll()
                return
            }
            group.cancelAll()
        }
        // Cancelled while waiting on the clock, the service ended.
        #expect(clock.sleepers() == 0)
    }

    @Test func serverSentEventsHeartbeatEachIntervalOfTheClock() async throws {
        let clock = TestClock()
        // Not a divisor of the other waits on the clock (maintenance, the webhook worker, the
        // access token's lifetime), so a pending wait of exactly this long is the heartbeat's.
        let heartbeat = Duration.seconds(7)
        /// Waits, without sleeping, until the stream's heartbeat task sleeps on the clock.
        @Sendable func heartbeatPending() async {
            while true {
                let sleepers = clock.sleepers()
                if clock.pendingDurations().contains(heartbeat) { return }
                await clock.waitForSleepers(sleepers + 1)
            }
        }
        try await RealtimeServer.run(
            realtime: RealtimeConfiguration(heartbeatInterval: heartbeat),
            waitsOn: clock
        ) { server in
            let (owner, _) = try await server.api.register("Ada")
            let stream = try await server.serverSentEvents(token: try #require(owner.token))
            defer { stream.cancel() }
            #expect(stream.status == .ok)
            let opening = await stream.blocks.next()
            #expect(opening?.comments == ["connected"])

            await heartbeatPending()
            clock.advance(by: heartbeat)
            let first = await stream.blocks.next()
            #expect(first?.comments == ["heartbeat"])

            // The next heartbeat waits for the next interval.
            await heartbeatPending()
            clock.advance(by: heartbeat)
            let second = await stream.blocks.next()
            #expect(second?.comments == ["heartbeat"])
        }
    }

    @Test func webhookWorkerIdleWaitEndsWhenTheClockReachesIt() async throws {
        let clock = TestClock()
        let wakeup = WebhookWakeup(clock: clock)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await wakeup.wait(upTo: WebhookDeliveryService.idleWait) }
            await clock.waitForSleepers(1)
            #expect(clock.pendingDurations() == [WebhookDeliveryService.idleWait])
            clock.advance(by: WebhookDeliveryService.idleWait)
            try await group.next()
        }
        #expect(clock.sleepers() == 0)

        // A signal ends the wait before the clock moves. Its timer runs on, and the next wait,
        // which ends no sooner, sets none of its own: the timer fires at the first deadline and
        // sleeps on to the second.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await wakeup.wait(upTo: WebhookDeliveryService.idleWait) }
            await clock.waitForSleepers(1)
            wakeup.signal()
            try await group.next()
        }
        #expect(clock.sleepers() == 1)
        clock.advance(by: .seconds(1))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await wakeup.wait(upTo: WebhookDeliveryService.idleWait) }
            while !wakeup.isWaiting { await Task.yield() }
            #expect(clock.requestedSleeps().count == 2)
            clock.advance(by: WebhookDeliveryService.idleWait - .seconds(1))
            // The first deadline: the timer sleeps again, to the waiter's.
            await clock.waitForSleepers(1)
            #expect(clock.requestedSleeps().count == 3)
            clock.advance(by: .seconds(1))
            try await group.next()
        }
        #expect(clock.sleepers() == 0)

        // A signal made while no one waits ends the next wait at once.
        wakeup.signal()
        await wakeup.wait(upTo: WebhookDeliveryService.idleWait)
        #expect(clock.sleepers() == 0)

        // A cancelled wait takes its timer with it.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await wakeup.wait(upTo: WebhookDeliveryService.idleWait) }
            await clock.waitForSleepers(1)
            group.cancelAll()
            try await group.next()
        }
        #expect(clock.sleepers() == 0)
    }
}
