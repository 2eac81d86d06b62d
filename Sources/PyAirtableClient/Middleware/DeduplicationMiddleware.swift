import Foundation
import HTTPTypes
import Synchronization

/// Identical JSON GETs in flight at the same time share one request: the first (the leader) goes to
/// the server and the others wait for its answer, read into memory so each can read it. Streamed
/// answers (downloads, event streams) are never shared.
final class DeduplicationMiddleware: ClientMiddleware {
    /// Requests of one client share its credentials, so the target and conditional header suffice.
    private struct Key: Hashable {
        var target: String
        var ifNoneMatch: String?
    }

    private typealias Waiter = CheckedContinuation<Result<ClientResponse, any Error>, Never>

    private struct Flight {
        var waiters: [UInt64: Waiter] = [:]
    }

    private struct State {
        var flights: [Key: Flight] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())
    private let maximumResponseSize: Int

    init(maximumResponseSize: Int) {
        self.maximumResponseSize = maximumResponseSize
    }

    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse {
        guard request.method == .get, request.headerFields[.accept] == "application/json" else {
            return try await next(request)
        }
        let key = Key(target: request.target, ifNoneMatch: request.headerFields[.ifNoneMatch])
        let isLeader = state.withLock { state -> Bool in
            if state.flights[key] != nil { return false }
            state.flights[key] = Flight()
            return true
        }
        if isLeader {
            let result: Result<ClientResponse, any Error>
            do {
                let response = try await next(request)
                do {
                    result = .success(try await response.collected(upTo: maximumResponseSize))
                } catch let error as HTTPBody.TooManyBytesError {
                    throw PyAirtableError.responseTooLarge(limit: maximumResponseSize, underlying: error)
                }
            } catch {
                result = .failure(error)
            }
            let waiters = state.withLock { $0.flights.removeValue(forKey: key)?.waiters.values.map { $0 } ?? [] }
            for waiter in waiters { waiter.resume(returning: result) }
            return try result.get()
        }
        let shared = await follow(key)
        switch shared {
        case .success(let response):
            return response
        case .failure(let error as PyAirtableError) where error == .cancelled:
            // The leader was cancelled, not this caller: ask for ourselves.
            try Task.checkCancellation()
            return try await next(request)
        case .failure(let error):
            throw error
        }
    }

    /// Waits for the leader of `key`; a cancelled follower stops waiting at once.
    private func follow(_ key: Key) async -> Result<ClientResponse, any Error> {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: Waiter) in
                let registered = state.withLock { state -> Bool in
                    guard state.flights[key] != nil, !Task.isCancelled else { return false }
                    state.flights[key]?.waiters[id] = continuation
                    return true
                }
                if !registered {
                    // The leader already finished (or we were cancelled): go alone.
                    continuation.resume(returning: .failure(PyAirtableError.cancelledError))
                }
            }
        } onCancel: {
            let waiter = state.withLock { $0.flights[key]?.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: .failure(PyAirtableError.cancelledError))
        }
    }
}
