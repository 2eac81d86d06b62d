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

/// The line on standard error for a conflict settled by a strategy.
enum ConflictNotice {
    static func line(for report: ConflictReport) -> String {
        let base = report.baseVersion.map { "version \($0)" } ?? "the version it started from"
        var line = "note: record \(report.recordID) changed since \(base) (now version \(report.server.version)); "
        switch report.outcome {
        case .keptServer: line += "kept the server's record"
        case .sentLocal: line += "wrote this change over it (\(report.strategy))"
        case .sentMerged: line += "merged this change into it"
        case .deleted: line += "deleted it"
        case .thrown, .failed: line += "not written"
        }
        let both = report.fields.filter { $0.choice != nil }.map(\.field)
        if !both.isEmpty {
            line += "; changed on both sides: \(both.joined(separator: ", ")) (kept: "
            line +=
                report.fields.filter { $0.choice != nil }.map { field in
                    switch field.choice {
                    case .local?: "\(field.field) = yours"
                    case .value?: "\(field.field) = the handler's"
                    default: "\(field.field) = the server's"
                    }
                }.joined(separator: ", ") + ")"
        }
        return line
    }
}
