import Foundation
import Logging
import PyAirtableModels
import Synchronization

/// Writes one JSON object per log line to standard error: `ts`, `level`, `label`, `message`,
/// `source` and every metadata key, for log shippers.
struct JSONLogHandler: LogHandler {
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
        var object: [String: JSONValue] = [
            "ts": .string(Timestamp.format(Date())), "level": .string(event.level.rawValue), "label": .string(label),
            "message": .string(event.message.description), "source": .string(event.source),
        ]
        if let error = event.error { object["error"] = .string("\(error)") }
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            object[key] = Self.json(value)
        }
        guard var data = try? JSONCoding.encoder.encode(JSONValue.object(object)) else { return }
        data.append(0x0A)
        Self.output.withLock { $0.write(data) }
    }

    private static func json(_ value: Logger.MetadataValue) -> JSONValue {
        switch value {
        case .string(let string): .string(string)
        case .stringConvertible(let convertible): .string(convertible.description)
        case .array(let array): .array(array.map(json))
        case .dictionary(let dictionary): .object(dictionary.mapValues(json))
        }
    }
}
