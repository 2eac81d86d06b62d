import Foundation
import Logging
import Synchronization
import TestSupport

@testable import OfflineQueue

extension TemporaryDirectory {
    var queueFile: String { file("queue.sqlite") }
}

extension OfflineQueue {
    static func make(
        path: String,
        clock: ManualWallClock,
        user: String = "usr1",
        maximumEntries: Int = 10_000,
        maximumBytes: Int = 1 << 24,
        leaseDuration: Duration = .seconds(300),
        maximumAttempts: Int? = nil
    ) throws -> OfflineQueue {
        try OfflineQueue(
            configuration: Configuration(
                path: path,
                namespace: QueueNamespace(serverURL: "http://127.0.0.1:8080", user: user),
                maximumEntries: maximumEntries,
                maximumBytes: maximumBytes,
                leaseDuration: leaseDuration,
                maximumAttempts: maximumAttempts,
                now: { clock.now }
            ),
            logger: quietLogger
        )
    }
}

extension QueuedRequest {
    static func patch(_ record: String, _ json: String = #"{"fields":{"Name":"x"}}"#) -> QueuedRequest {
        QueuedRequest(method: "PATCH", path: "/api/v1/records/\(record)", body: Data(json.utf8))
    }

    static func create(
        table: String = "tbl00000000000001",
        _ json: String = #"{"fields":{"Name":"new"}}"#
    )
        -> QueuedRequest
    {
        QueuedRequest(method: "POST", path: "/api/v1/tables/\(table)/records", body: Data(json.utf8))
    }

    var bodyText: String { body.map { String(decoding: $0, as: UTF8.self) } ?? "" }
}

extension QueuedMutation.Failure {
    static func server(_ status: Int, _ message: String = "boom") -> Self {
        QueuedMutation.Failure(status: status, message: message, occurredAt: Date(timeIntervalSince1970: 0))
    }
}

/// Failures the tests cause on purpose are logged as warnings; keep the output for real problems.
let quietLogger: Logger = {
    var logger = Logger(label: "pyat.queue.tests")
    logger.logLevel = .error
    return logger
}()

/// A flag one task sets and another reads.
final class Flag: Sendable {
    private let value = Mutex(false)

    var isSet: Bool { value.withLock { $0 } }

    func set() {
        value.withLock { $0 = true }
    }
}
