import Foundation
import HTTPTypes
import Synchronization

/// What started a background replay of the offline queue.
public enum ReplayTrigger: String, Sendable, Hashable {
    /// The client started (writes queued by an earlier run).
    case startup
    /// A probe of the server (`GET /health`) answered after writes were queued because it could not
    /// be reached.
    case connectivityRegained
    /// ``OfflineControl/replayNow()``.
    case explicit
    /// A write was queued only to wait behind an earlier queued create, with the server reachable.
    case writeQueued
    /// The client signed in (`login`, `register`, a personal access token): writes that account
    /// queued in an earlier run go.
    case signedIn
}

/// What the background replay of the offline queue does now.
public enum ReplayState: Sendable, Hashable {
    /// Nothing: the queue is empty as far as the client knows, or replays only when asked.
    case idle
    /// Writes wait because the server could not be reached; a probe asks it every
    /// ``PyAirtableClient/OfflineSettings/probeInterval``.
    case waitingForServer
    /// A replay runs, started by this trigger.
    case replaying(ReplayTrigger)
}

/// One background replay of the offline queue and how it ended.
public struct ReplayRun: Sendable, Hashable {
    /// What started it.
    public var trigger: ReplayTrigger
    /// What it did; `nil` when it failed before sending (see ``error``).
    public var report: ReplayReport?
    /// Why it failed, when it did (the queue file could not be read, …).
    public var error: String?
}

/// Schedules the background replays of the offline queue. Replay never starts as a side effect of an
/// unrelated call: only on explicit triggers — the client's start, a write queued behind a create,
/// ``OfflineControl/replayNow()``, and a probe that sees the server answer again after a write was
/// queued because it could not be reached.
final class ReplayScheduler: Sendable {
    private struct State {
        var phase: ReplayState = .idle
        var task: Task<Void, Never>?
        /// A trigger that came while a replay ran: one more run follows.
        var again: ReplayTrigger?
        /// A write was queued for want of the server while a replay ran: probe after it.
        var unreachableDuringRun = false
        var stopped = false
    }

    private let state = Mutex(State())
    private let automatic: Bool
    private let probeInterval: Duration
    let runs = Broadcast<ReplayRun>()
    let states = Broadcast<ReplayState>()

    init(settings: PyAirtableClient.OfflineSettings) {
        self.automatic = settings.isEnabled && settings.replaysAutomatically && !settings.queueWithoutTrying
        self.probeInterval = settings.probeInterval
    }

    var phase: ReplayState { state.withLock { $0.phase } }

    /// Starts a replay now (or right after the one running). Triggers other than `.explicit` count
    /// only when the queue replays automatically.
    func trigger(_ trigger: ReplayTrigger, client: PyAirtableClient) {
        guard trigger == .explicit || automatic, client.offlineQueues != nil else { return }
        let started = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            if case .replaying = state.phase {
                state.again = state.again ?? trigger
                return false
            }
            state.task?.cancel()
            state.phase = .replaying(trigger)
            state.task = Task { [weak client] in
                guard let client else { return }
                await self.run(trigger, client: client)
            }
            return true
        }
        if started { states.yield(.replaying(trigger)) }
    }

    /// Notes that a write was queued because the server could not be reached: unless a replay runs,
    /// probe the server until it answers, then replay.
    func serverUnreachable(client: PyAirtableClient) {
        guard automatic else { return }
        let waiting = state.withLock { state -> Bool in
            if case .replaying = state.phase { state.unreachableDuringRun = true }
            guard !state.stopped, state.phase == .idle else { return false }
            state.phase = .waitingForServer
            state.task = probe(client: client)
            return true
        }
        if waiting { states.yield(.waitingForServer) }
    }

    /// Stops probing and replaying (at the client's shutdown).
    func stop() async {
        let task = state.withLock { state -> Task<Void, Never>? in
            state.stopped = true
            state.phase = .idle
            defer { state.task = nil }
            return state.task
        }
        task?.cancel()
        await task?.value
        states.yield(.idle)
        runs.finish()
        states.finish()
    }

    private func run(_ trigger: ReplayTrigger, client: PyAirtableClient) async {
        var current = trigger
        while true {
            let run: ReplayRun
            do {
                let report = try await client.offline.replay()
                run = ReplayRun(trigger: current, report: report)
            } catch {
                run = ReplayRun(trigger: current, report: nil, error: "\(error)")
            }
            if Task.isCancelled { return }
            let next = state.withLock { state -> ReplayState? in
                guard !state.stopped else { return nil }
                let unreachable = run.report?.stoppedBy != nil || state.unreachableDuringRun
                state.unreachableDuringRun = false
                if let again = state.again {
                    state.again = nil
                    state.phase = .replaying(again)
                } else if unreachable && automatic {
                    state.phase = .waitingForServer
                    state.task = probe(client: client)
                } else {
                    state.phase = .idle
                    state.task = nil
                }
                return state.phase
            }
            // The run is announced once the state says what follows it, so whoever sees the run
            // reads the state after it.
            runs.yield(run)
            guard let next else { return }
            states.yield(next)
            guard case .replaying(let again) = next else { return }
            current = again
        }
    }

    /// Asks the server every `probeInterval` (on the client's clock) until it answers, then replays.
    private func probe(client: PyAirtableClient) -> Task<Void, Never> {
        let clock = client.configuration.clock
        let interval = probeInterval
        return Task { [weak client] in
            while !Task.isCancelled {
                do {
                    try await clock.sleep(for: interval)
                } catch {
                    return
                }
                guard let client else { return }
                let request = ClientRequest(
                    method: .get,
                    path: "/health",
                    headerFields: [.accept: "application/json"],
                    operation: ClientOperation(service: "offline", name: "probe"),
                    authenticated: false
                )
                guard (try? await client.execute(request)) != nil, !Task.isCancelled else { continue }
                let resumed = self.state.withLock { state -> Bool in
                    guard !state.stopped, state.phase == .waitingForServer else { return false }
                    state.phase = .idle
                    return true
                }
                if resumed { self.trigger(.connectivityRegained, client: client) }
                return
            }
        }
    }
}

extension OfflineControl {
    /// What the background replay does now: idle, waiting for the server (probing it), or replaying.
    public var replayState: ReplayState {
        client.replayScheduler.phase
    }

    /// The background replays as they finish, each with its trigger and report.
    public func replayRuns() -> AsyncStream<ReplayRun> {
        client.replayScheduler.runs.subscribe()
    }

    /// The background replay's states as they change.
    public func replayStates() -> AsyncStream<ReplayState> {
        client.replayScheduler.states.subscribe()
    }

    /// Starts a background replay of the queue now (or right after the one running), whether or not
    /// the queue replays automatically; follow it with ``replayRuns()`` or ``waitForPendingWrites()``.
    /// ``replay(progress:)`` replays in the caller's task instead.
    public func replayNow() {
        client.replayScheduler.trigger(.explicit, client: client)
    }
}
