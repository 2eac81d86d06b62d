import Foundation
import PyAirtableClient

/// Collects whether any answer of a command came from the cache because the server could not be
/// reached, and says so in one line on standard error.
struct CachedAnswerNotice {
    private var oldest: Date?
    private var stale = false
    private var reason: PyAirtableError?

    /// Notes one answer.
    mutating func note<Value>(_ response: CachedResponse<Value>) {
        guard let error = response.networkError else { return }
        reason = reason ?? error
        stale = stale || response.isStale
        if let storedAt = response.storedAt { oldest = min(oldest ?? storedAt, storedAt) }
    }

    /// Writes the notice, if an answer came from the cache for want of the server.
    func print(what: String) {
        guard let reason else { return }
        var line = "note: the server could not be reached (\(reason.shortDescription)); showing cached \(what)"
        if let oldest {
            let formatter = ISO8601DateFormatter()
            line += " from \(formatter.string(from: oldest))"
        }
        if stale { line += ", which may be out of date" }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
