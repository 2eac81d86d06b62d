import Foundation
import PyAirtableClient

/// A command that failed: reported as one `error: …` line on standard error and an exit status.
struct CommandFailure: Error, CustomStringConvertible {
    /// The exit statuses of the CLI (see DESIGN.md).
    enum Status: Int32 {
        case failure = 1
        case usage = 2
        case conflict = 4
    }

    var message: String
    var status: Status

    init(_ message: String, status: Status = .failure) {
        self.message = message
        self.status = status
    }

    /// The failure for an SDK error: its message fit for a person, the server's request id, and
    /// status 4 for a conflict (409, 412).
    init(_ error: PyAirtableError, server: URL) {
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

    var description: String { "error: \(message)" }
}
