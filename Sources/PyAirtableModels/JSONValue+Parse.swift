import Foundation

extension JSONValue {
    /// Parses JSON text (RFC 8259) straight into a value, or answers `nil` when it is not valid JSON
    /// (or nests deeper than 512, or holds a number a `Double` cannot represent).
    ///
    /// `Decodable` decoding of a `JSONValue` has to guess each value's kind, and every wrong guess
    /// throws; this reads the kind from the next byte. Realtime clients decode every event this way.
    public static func parse(_ bytes: some Collection<UInt8>) -> JSONValue? {
        let parsed = bytes.withContiguousStorageIfAvailable { buffer -> JSONValue? in
            var parser = JSONTextParser(bytes: buffer)
            return parser.document()
        }
        if let parsed { return parsed }
        let copy = Array(bytes)
        return copy.withUnsafeBufferPointer { buffer in
            var parser = JSONTextParser(bytes: buffer)
            return parser.document()
        }
    }
}

/// A strict recursive-descent JSON parser over UTF-8 bytes.
struct JSONTextParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0
    private static let maximumDepth = 512

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    mutating func document() -> JSONValue? {
        guard let value = value() else { return nil }
        skipWhitespace()
        return index == bytes.count ? value : nil
    }

    private mutating func value() -> JSONValue? {
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
        guard depth <= Self.maximumDepth else { return nil }
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
        guard depth <= Self.maximumDepth else { return nil }
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

    private mutating func string() -> String? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
        index += 1
        let start = index
        // The common case: no escapes, so the bytes are the string.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { return nil }
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

    private mutating func number() -> Double? {
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

    private mutating func literal(_ word: StaticString) -> Bool {
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

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }
}

extension RealtimeServerFrame {
    /// Decodes a frame's text. Event frames — nearly all of them — are read through
    /// ``JSONValue/parse(_:)``; anything else, or anything unexpected, goes through `JSONDecoder`,
    /// whose errors stay the ones callers see.
    public static func decode(_ text: String) throws -> RealtimeServerFrame {
        var text = text
        let fast = text.withUTF8 { bytes -> RealtimeServerFrame? in
            guard case .object(let frame)? = JSONValue.parse(bytes), frame["type"] == .string("event"),
                case .string(let subscription)? = frame["subscription"],
                case .object(let event)? = frame["event"],
                let decoded = Event(fields: event)
            else { return nil }
            return .event(subscription: subscription, event: decoded)
        }
        if let fast { return fast }
        return try JSONCoding.decoder.decode(RealtimeServerFrame.self, from: Data(text.utf8))
    }
}

extension Event {
    /// Decodes an event's JSON text through ``JSONValue/parse(_:)``, falling back on `JSONDecoder`
    /// (and its errors) for anything unexpected.
    public static func decode(_ text: String) throws -> Event {
        var text = text
        let fast = text.withUTF8 { bytes -> Event? in
            guard case .object(let fields)? = JSONValue.parse(bytes) else { return nil }
            return Event(fields: fields)
        }
        if let fast { return fast }
        return try JSONCoding.decoder.decode(Event.self, from: Data(text.utf8))
    }

    /// An event from its parsed members, or `nil` when any is missing or malformed.
    init?(fields: [String: JSONValue]) {
        guard case .number(let seqNumber)? = fields["seq"], let seq = Int64(exactly: seqNumber),
            case .string(let type)? = fields["type"],
            let payload = fields["payload"],
            case .string(let timestamp)? = fields["ts"], let ts = Timestamp.parse(timestamp)
        else { return nil }
        func identifier<Kind: IdentifierKind>(_ key: String, as: Identifier<Kind>.Type) -> Identifier<Kind>?? {
            switch fields[key] {
            case nil, .null?: return .some(nil)
            case .string(let raw)?: return Identifier<Kind>(raw).map { .some($0) }
            default: return nil
            }
        }
        guard let workspaceID = identifier("workspace_id", as: WorkspaceID.self),
            let baseID = identifier("base_id", as: BaseID.self),
            let tableID = identifier("table_id", as: TableID.self),
            let recordID = identifier("record_id", as: RecordID.self),
            let actor = identifier("actor", as: UserID.self)
        else { return nil }
        self.init(
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
}
