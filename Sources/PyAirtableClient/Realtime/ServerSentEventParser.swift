/// One message of a `text/event-stream`.
struct ServerSentEvent: Sendable, Hashable {
    var id: String?
    var event: String?
    var data: String
}

/// Parses a `text/event-stream` incrementally: feed it bytes as they arrive, take the complete
/// messages. Follows the WHATWG rules: lines end in LF, CRLF or CR; `:` starts a comment; a blank
/// line dispatches; several `data:` lines join with LF; one space after the colon is dropped.
///
/// Memory is bounded whatever the stream holds: a line longer than ``maximumLineLength`` and an event
/// whose `data` lines add up to more than ``maximumEventSize`` are protocol errors, and nothing else
/// accumulates (comments, `event:` and `id:` lines keep one value each).
struct ServerSentEventParser {
    private var line: [UInt8] = []
    private var lastWasCR = false
    private var id: String?
    private var event: String?
    private var data: [String] = []
    private var dataSize = 0
    private var hasData = false
    /// Comments seen (heartbeats), for liveness.
    private(set) var comments = 0

    /// The largest line accepted, in bytes.
    let maximumLineLength: Int
    /// The largest event accepted: the bytes of its `data` lines plus the line feeds joining them.
    let maximumEventSize: Int

    init(maximumLineLength: Int = 16 * 1024 * 1024, maximumEventSize: Int = 16 * 1024 * 1024) {
        self.maximumLineLength = maximumLineLength
        self.maximumEventSize = maximumEventSize
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
                if let message = try endLine() { messages.append(message) }
            case 0x0D:
                lastWasCR = true
                if let message = try endLine() { messages.append(message) }
            default:
                line.append(byte)
                if line.count > maximumLineLength { throw ServerSentEventError.lineTooLong }
            }
        }
        return messages
    }

    private mutating func endLine() throws -> ServerSentEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            defer {
                event = nil
                data.removeAll()
                dataSize = 0
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
            dataSize += value.utf8.count + (hasData ? 1 : 0)
            if dataSize > maximumEventSize { throw ServerSentEventError.eventTooLarge }
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
    /// A line longer than ``ServerSentEventParser/maximumLineLength``.
    case lineTooLong
    /// An event larger than ``ServerSentEventParser/maximumEventSize``.
    case eventTooLarge
}
