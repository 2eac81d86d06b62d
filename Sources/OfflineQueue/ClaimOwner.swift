import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Who claims mutations: one ``OfflineQueue`` instance in one process on one machine.
///
/// A claim names its owner so that another instance can tell a claim it must respect (its owner is
/// alive and its lease runs) from one left by a process that died mid-replay.
struct ClaimOwner: Sendable, Hashable {
    /// Unique per queue instance.
    var id: String
    var processID: Int32
    var host: String

    /// A new owner for an instance opened in this process.
    static func current() -> ClaimOwner {
        ClaimOwner(id: UUID().uuidString, processID: getpid(), host: hostName)
    }

    static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// The queue instances open in this process. An instance of this process that is not here was
    /// closed (or crashed with the process, in a test that simulates it): its claims are abandoned.
    private static let live = Mutex<Set<String>>([])

    func register() {
        _ = Self.live.withLock { $0.insert(id) }
    }

    func unregister() {
        _ = Self.live.withLock { $0.remove(id) }
    }

    /// Whether a claim held by `claim` was abandoned: its lease ran out, or its owner is gone.
    ///
    /// On another machine the process cannot be checked, so only the lease counts there.
    static func isAbandoned(_ claim: QueuedMutation.Claim, now: Date) -> Bool {
        if now >= claim.leaseExpiresAt { return true }
        guard claim.host == hostName else { return false }
        if claim.processID == getpid() {
            return !live.withLock { $0.contains(claim.owner) }
        }
        return !processExists(claim.processID)
    }

    /// Whether a process with this id exists (a permission error means it exists, owned by someone else).
    static func processExists(_ processID: Int32) -> Bool {
        guard processID > 0 else { return false }
        if kill(processID, 0) == 0 { return true }
        return errno == EPERM
    }
}
