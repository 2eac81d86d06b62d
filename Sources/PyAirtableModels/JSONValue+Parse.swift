import Foundation

extension JSONValue {
    /// The deepest nesting ``parse(_:maximumDepth:)`` accepts unless told otherwise: 512, as
    /// `JSONDecoder`.
    public static let defaultMaximumParseDepth = 512

    /// Parses JSON text (RFC 8259) straight into a value, or answers `nil` when it is not valid JSON
    /// (or nests deeper than `maximumDepth`, or holds a number a `Double` cannot represent).
    ///
    /// `Decodable` decoding of a `JSONValue` has to guess each value's kind, and every wrong guess
    /// throws; this reads the kind from the next byte. Realtime clients decode every event this way.
    /// The parser recurses once per level, so `maximumDepth` bounds its stack.
    public static func parse(
        _ bytes: some Collection<UInt8>,
        maximumDepth: Int = defaultMaximumParseDepth
    ) -> JSONValue? {
        let parsed = bytes.withContiguousStorageIfAvailable { buffer -> JSONValue? in
            var parser = JSONTextParser(bytes: buffer, maximumDepth: maximumDepth)
            return parser.document()
        }
        if let parsed { return parsed }
        let copy = Array(bytes)
        return copy.withUnsafeBufferPointer { buffer in
            var parser = JSONTextParser(bytes: buffer, maximumDepth: maximumDepth)
            return parser.document()
        }
    }
}

/// A strict recursive-descent JSON parser over UTF-8 bytes, for the package's hot decoding paths.
///
/// It recurses once per array or object level and refuses (answers `nil`) past `maximumDepth`, so its
/// stack, and that of anything walking the values it returns, stays bounded.
package struct JSONTextParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private let maximumDepth: Int
    private var index = 0
    private var depth = 0

    package init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int = JSONValue.defaultMaximumParseDepth) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    mutating func document() -> JSONValue? {
        guard let value = value() else { return nil }
        skipWhitespace()
        return index == bytes.count ? value : nil
    }

    /// An `event` frame read straight into its parts (no dictionaries for the frame or the event);
    /// `nil` for any other frame, a repeated or missing member, or anything malformed.
    mutating func eventFrame() -> (subscription: String, event: Event)? {
        var type: String?
        var subscription: String?
        var event: Event?
        let complete = members { parser, key in
            switch key {
            case "type" where type == nil:
                type = parser.string()
                return type != nil
            case "subscription" where subscription == nil:
                subscription = parser.string()
                return subscription != nil
            case "event" where event == nil:
                event = parser.event()
                return event != nil
            default:
                return false
            }
        }
        skipWhitespace()
        guard complete, index == bytes.count, type == "event", let subscription, let event else { return nil }
        return (subscription, event)
    }

    /// An event object, read member by member.
    mutating func event() -> Event? {
        var seq: Int64?
        var type: String?
        var ts: Date?
        var payload: JSONValue?
        var ids: [String: String?] = [:]
        let complete = members { parser, key in
            switch key {
            case "seq" where seq == nil:
                guard let first = parser.peek(),
                    first == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first),
                    let number = parser.number()
                else { return false }
                seq = Int64(exactly: number)
                return seq != nil
            case "type" where type == nil:
                type = parser.string()
                return type != nil
            case "ts" where ts == nil:
                ts = parser.string().flatMap(Timestamp.parse)
                return ts != nil
            case "payload" where payload == nil:
                payload = parser.value()
                return payload != nil
            case "workspace_id", "base_id", "table_id", "record_id", "actor":
                guard ids[key] == nil else { return false }
                if parser.peek() == UInt8(ascii: "n") {
                    guard parser.literal("null") else { return false }
                    ids[key] = .some(nil)
                    return true
                }
                guard let raw = parser.string() else { return false }
                ids[key] = .some(raw)
                return true
            default:
                return false
            }
        }
        guard complete, let seq, let type, let ts, let payload else { return nil }
        func identifier<Kind: IdentifierKind>(_ key: String, as: Identifier<Kind>.Type) -> Identifier<Kind>?? {
            guard let raw = ids[key] ?? nil else { return .some(nil) }
            return Identifier<Kind>(raw).map { .some($0) }
        }
        guard let workspaceID = identifier("workspace_id", as: WorkspaceID.self),
            let baseID = identifier("base_id", as: BaseID.self),
            let tableID = identifier("table_id", as: TableID.self),
            let recordID = identifier("record_id", as: RecordID.self),
            let actor = identifier("actor", as: UserID.self)
        else { return nil }
        return Event(
            seq: seq,
            type: EventType(rawValue: type),
            workspaceID: workspaceID,
            baseID: baseID,
            tableID: tableID,
            recordID: recordID,
            payload: payload,
            actor: actor,
            ts: ts
        )
    }

    /// Reads an object, handing each member's key to `member` with the parser positioned at its
    /// value; `member` consumes the value and answers whether it was acceptable.
    package mutating func members(_ member: (inout JSONTextParser, String) -> Bool) -> Bool {
        skipWhitespace()
        guard consume(UInt8(ascii: "{")) else { return false }
        skipWhitespace()
        if consume(UInt8(ascii: "}")) { return true }
        repeat {
            skipWhitespace()
            guard let key = string() else { return false }
            skipWhitespace()
            guard consume(UInt8(ascii: ":")) else { return false }
            skipWhitespace()
            guard member(&self, key) else { return false }
            skipWhitespace()
        } while consume(UInt8(ascii: ","))
        return consume(UInt8(ascii: "}"))
    }

    private func peek() -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    package mutating func value() -> JSONValue? {
        skipWhitespace()
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "{"): return object()
        case UInt8(ascii: "["): return array()
        case UInt8(ascii: "\""): return string().map(JSONValue.string)
        case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
        case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
        case UInt8(ascii: "n"): return literal("null") ? .null : nil
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number().map(JSONValue.number)
        default: return nil
        }
    }

    private mutating func object() -> JSONValue? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= maximumDepth else { return nil }
        index += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if consume(UInt8(ascii: "}")) { return .object(members) }
        repeat {
            skipWhitespace()
            guard let key = string() else { return nil }
            skipWhitespace()
            guard consume(UInt8(ascii: ":")), let value = value() else { return nil }
            // Like JSONDecoder, a repeated key keeps its first value.
            if members[key] == nil { members[key] = value }
            skipWhitespace()
        } while consume(UInt8(ascii: ","))
        return consume(UInt8(ascii: "}")) ? .object(members) : nil
    }

    private mutating func array() -> JSONValue? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= maximumDepth else { return nil }
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if consume(UInt8(ascii: "]")) { return .array(elements) }
        repeat {
            guard let element = value() else { return nil }
            elements.append(element)
            skipWhitespace()
        } while consume(UInt8(ascii: ","))
        return consume(UInt8(ascii: "]")) ? .array(elements) : nil
    }

    mutating func string() -> String? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
        index += 1
        let start = index
        var ascii = true
        // The common case: no escapes, so the bytes are the string.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                // ASCII is valid UTF-8: no validation pass.
                return ascii ? String(decoding: raw, as: UTF8.self) : String(validating: raw, as: UTF8.self)
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { return nil }
            if byte >= 0x80 { ascii = false }
            index += 1
        }
        guard index < bytes.count else { return nil }
        var scalars = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(validating: scalars, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { return nil }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escape)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    guard let scalar = unicodeEscape() else { return nil }
                    scalars.append(contentsOf: String(Character(scalar)).utf8)
                default: return nil
                }
            default:
                if byte < 0x20 { return nil }
                scalars.append(byte)
            }
        }
        return nil
    }

    /// The scalar of `\uXXXX` (the `\u` already read), joining a surrogate pair.
    private mutating func unicodeEscape() -> Unicode.Scalar? {
        guard let high = hex4() else { return nil }
        if (0xD800...0xDBFF).contains(high) {
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
            else { return nil }
            index += 2
            guard let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
            return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
        }
        return Unicode.Scalar(high)
    }

    private mutating func hex4() -> UInt32? {
        guard index + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            index += 1
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    mutating func number() -> Double? {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard digits(integerPart: true) else { return nil }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits(integerPart: false) else { return nil }
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard digits(integerPart: false) else { return nil }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let number = Double(text), number.isFinite else { return nil }
        return number
    }

    private mutating func digits(integerPart: Bool) -> Bool {
        let start = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        if index == start { return false }
        return !integerPart || index - start == 1 || bytes[start] != UInt8(ascii: "0")
    }

    mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
        index += count
        return true
    }

    private mutating func consume(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    package var isAtEnd: Bool { index == bytes.count }

    package mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }
}

extension RealtimeServerFrame {
    /// Decodes a frame's text. Event frames — nearly all of them — are read by a byte-level reader
    /// (only the payload becomes a ``JSONValue``); anything else, or anything unexpected, goes through
    /// `JSONDecoder`, whose errors stay the ones callers see.
    public static func decode(_ text: String) throws -> RealtimeServerFrame {
        var text = text
        let fast = text.withUTF8 { bytes -> RealtimeServerFrame? in
            var parser = JSONTextParser(bytes: bytes)
            guard let (subscription, event) = parser.eventFrame() else { return nil }
            return .event(subscription: subscription, event: event)
        }
        if let fast { return fast }
        return try JSONCoding.decoder.decode(RealtimeServerFrame.self, from: Data(text.utf8))
    }
}

extension Event {
    /// Decodes an event's JSON text with a byte-level reader (only the payload becomes a
    /// ``JSONValue``), falling back on `JSONDecoder` (and its errors) for anything unexpected.
    public static func decode(_ text: String) throws -> Event {
        var text = text
        let fast = text.withUTF8 { bytes -> Event? in
            var parser = JSONTextParser(bytes: bytes)
            guard let event = parser.event() else { return nil }
            parser.skipWhitespace()
            return parser.isAtEnd ? event : nil
        }
        if let fast { return fast }
        return try JSONCoding.decoder.decode(Event.self, from: Data(text.utf8))
    }
}
