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

    func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
        file: String, function: String, line: UInt
    ) {
        var object: [String: JSONValue] = [
            "ts": .string(Timestamp.format(Date())), "level": .string(level.rawValue), "label": .string(label),
            "message": .string(message.description), "source": .string(source),
        ]
        for (key, value) in metadata.merging(explicit ?? [:], uniquingKeysWith: { $1 }) {
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
