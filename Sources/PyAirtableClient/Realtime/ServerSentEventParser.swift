/// One message of a `text/event-stream`.
struct ServerSentEvent: Sendable, Hashable {
    var id: String?
    var event: String?
    var data: String
}

/// Parses a `text/event-stream` incrementally: feed it bytes as they arrive, take the complete
/// messages. Follows the WHATWG rules: lines end in LF, CRLF or CR; `:` starts a comment; a blank
/// line dispatches; several `data:` lines join with LF; one space after the colon is dropped.
struct ServerSentEventParser {
    private var line: [UInt8] = []
    private var lastWasCR = false
    private var id: String?
    private var event: String?
    private var data: [String] = []
    private var hasData = false
    /// Comments seen (heartbeats), for liveness.
    private(set) var comments = 0

    /// The largest line accepted; a longer one is a protocol error rather than unbounded memory.
    let maximumLineLength: Int

    init(maximumLineLength: Int = 16 * 1024 * 1024) {
        self.maximumLineLength = maximumLineLength
    }

    /// Consumes `bytes` and returns the messages they complete.
    mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [ServerSentEvent] {
        var messages: [ServerSentEvent] = []
        for byte in bytes {
            if lastWasCR {
                lastWasCR = false
                if byte == 0x0A { continue }
            }
            switch byte {
            case 0x0A:
                if let message = endLine() { messages.append(message) }
            case 0x0D:
                lastWasCR = true
                if let message = endLine() { messages.append(message) }
            default:
                line.append(byte)
                if line.count > maximumLineLength { throw ServerSentEventError.lineTooLong }
            }
        }
        return messages
    }

    private mutating func endLine() -> ServerSentEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            defer {
                event = nil
                data.removeAll()
                hasData = false
            }
            guard hasData else { return nil }
            return ServerSentEvent(id: id, event: event, data: data.joined(separator: "\n"))
        }
        if line.first == UInt8(ascii: ":") {
            comments += 1
            return nil
        }
        let field: String
        var value: String
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = String(decoding: line[..<colon], as: UTF8.self)
            var start = line.index(after: colon)
            if start < line.endIndex, line[start] == UInt8(ascii: " ") { start = line.index(after: start) }
            value = String(decoding: line[start...], as: UTF8.self)
        } else {
            field = String(decoding: line, as: UTF8.self)
            value = ""
        }
        switch field {
        case "data":
            data.append(value)
            hasData = true
        case "event":
            event = value
        case "id":
            if !value.contains("\0") { id = value }
        default:
            value = ""
        }
        return nil
    }
}

enum ServerSentEventError: Error {
    case lineTooLong
}
