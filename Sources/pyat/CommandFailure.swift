import Foundation
import PyAirtableClient

/// A command that failed: reported as one `error: …` line on standard error and an exit status.
struct CommandFailure: Error, CustomStringConvertible {
    /// The exit statuses of the CLI (see DESIGN.md).
    enum Status: Int32 {
        case failure = 1
        case usage = 2
        /// The write could not reach the server and is queued offline (it will replay).
        case queued = 3
        case conflict = 4
    }

    var message: String
    var status: Status
    /// What to print on standard output before exiting (a queued create's temporary id).
    var output: String?

    init(_ message: String, status: Status = .failure, output: String? = nil) {
        self.message = message
        self.status = status
        self.output = output
    }

    /// The failure for an SDK error: its message fit for a person, the server's request id, and
    /// status 4 for a conflict (409, 412).
    init(_ error: PyAirtableError, server: URL) {
        if error == .queuedOffline {
            // A queued write's saved value was asked for: it is still queued, as `init(queued:)` says.
            self.init(error.message + ". Run `pyat queue replay` when the server is back.", status: .queued)
            return
        }
        var message = error.userMessage
        if error == .unauthorized || error == .notAuthenticated {
            message += " Run `pyat login`, or set PYAT_TOKEN."
        }
        if let requestID = error.requestID {
            message += " (request \(requestID))"
        } else if error.isConnectivityFailure {
            message += " (server \(server.absoluteString))"
        }
        let isConflict = error == .preconditionFailed || error == .conflict
        self.init(message, status: isConflict ? .conflict : .failure)
    }

    /// The report of a write the SDK queued offline: status 3, and the new record's temporary id (or
    /// the queued write's number) on standard output.
    init(queued write: QueuedWrite) {
        let id = "#\(write.mutationID)"
        self.init(
            "\(write.queuedBecause); the write is queued offline \(id)"
                + (write.temporaryID.map { " (the new record is \($0) until then)" } ?? "")
                + ". Run `pyat queue replay` when the server is back.",
            status: .queued,
            output: write.temporaryID?.rawValue ?? id
        )
    }

    var description: String { "error: \(message)" }
}
