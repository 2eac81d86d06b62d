import Foundation
import TestSupport
import Testing

@testable import OfflineQueue

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("A replaying process killed with SIGKILL, again and again", .timeLimit(.minutes(15)))
struct KilledProcessTests {
    /// Stands in for the server's idempotency store: every key a child process sent, one per line.
    private static func sentKeys(_ log: String) throws -> [String] {
        try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    @Test("Every mutation is sent, none lost, and any resend carries the key it was first sent with")
    func killedMidReplay() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.queueFile
        let log = directory.path + "/sent.log"
        let namespace = QueueNamespace(serverURL: "http://127.0.0.1:8080", user: "usr1")
        #expect(FileManager.default.createFile(atPath: log, contents: nil))
        var keys: Set<String> = []
        do {
            let queue = try OfflineQueue(configuration: .init(path: path, namespace: namespace), logger: quietLogger)
            for index in 0..<40 {
                let scope = "rec\(index % 6)"
                keys.insert(try await queue.enqueue(.patch(scope), scope: scope, batchKey: "tbl1").idempotencyKey)
            }
        }

        var sentBefore = 0
        var interruptedKeys: Set<String> = []
        for round in 0..<4 {
            // A child process replays part of the queue and is killed after sending a batch, before it
            // records the batch as complete.
            await #expect(processExitsWith: .signal(SIGKILL)) {
                [path = path as String, log = log as String, round = round as Int] in
                let queue = try OfflineQueue(
                    configuration: .init(
                        path: path,
                        namespace: QueueNamespace(serverURL: "http://127.0.0.1:8080", user: "usr1")
                    )
                )
                var batches = 0
                while true {
                    let batch = try await queue.claimBatch(maximum: 3)
                    if batch.isEmpty { break }
                    let lines = batch.map { $0.idempotencyKey + "\n" }.joined()
                    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
                    try handle.seekToEnd()
                    try handle.write(contentsOf: Data(lines.utf8))
                    try handle.synchronize()
                    try handle.close()
                    batches += 1
                    if batches == round + 2 { kill(getpid(), SIGKILL) }
                    try await queue.complete(batch.map(\.id))
                }
                kill(getpid(), SIGKILL)
            }
            // The killed child's claims are found abandoned at once: pending again, keys unchanged.
            let queue = try OfflineQueue(configuration: .init(path: path, namespace: namespace), logger: quietLogger)
            let held = try await queue.mutations()
            #expect(held.allSatisfy { $0.state == .pending })
            #expect(Set(held.map(\.idempotencyKey)).isSubset(of: keys))
            let sent = try Self.sentKeys(log)
            #expect(sent.count > sentBefore)
            sentBefore = sent.count
            // Sent but not completed: the child died holding them. They will be sent again.
            let interrupted = held.filter { Set(sent).contains($0.idempotencyKey) }
            #expect(!interrupted.isEmpty)
            #expect(interrupted.allSatisfy { $0.attempts >= 1 })
            interruptedKeys.formUnion(interrupted.map(\.idempotencyKey))
        }

        // A final replay in this process.
        let queue = try OfflineQueue(configuration: .init(path: path, namespace: namespace), logger: quietLogger)
        var resent: [String] = []
        while true {
            let batch = try await queue.claimBatch(maximum: 5)
            if batch.isEmpty { break }
            resent += batch.map(\.idempotencyKey)
            try await queue.complete(batch.map(\.id))
        }
        #expect(try await queue.counts() == QueueCounts())

        let sent = try Self.sentKeys(log) + resent
        // Nothing lost: every key reached the "server".
        #expect(Set(sent) == keys)
        // Nothing invented: a key sent twice is one whose sender died before completing it, which the
        // server's idempotency store answers without applying again.
        var sends: [String: Int] = [:]
        for key in sent { sends[key, default: 0] += 1 }
        let resentKeys = Set(sends.filter { $0.value > 1 }.keys)
        #expect(!resentKeys.isEmpty)
        #expect(resentKeys.isSubset(of: interruptedKeys))
    }
}
