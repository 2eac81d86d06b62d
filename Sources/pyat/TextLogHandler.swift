import Foundation
import Logging
import PyAirtableModels
import Synchronization

/// Writes StreamLogHandler's line format to standard error — `ts level label: key=value [source]
/// message` — but formats the metadata when a line is written, not when metadata is set.
///
/// The server's framework tags every request's logger with a request id; StreamLogHandler
/// re-renders all of its metadata into text at each such change, a cost every request paid even
/// when nothing is logged.
struct TextLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    private static let output = Mutex(FileHandle.standardError)

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        if let error = event.error { merged["error"] = "\(error)" }
        let rendered =
            merged.isEmpty
            ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let line =
            "\(Timestamp.format(Date())) \(event.level) \(label):\(rendered) [\(event.source)] \(event.message)\n"
        Self.output.withLock { $0.write(Data(line.utf8)) }
    }
}
