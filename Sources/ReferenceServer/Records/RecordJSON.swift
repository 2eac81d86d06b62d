import Foundation
import PyAirtableModels

/// A value whose wire JSON was written inside its transaction; stores and answers use the bytes as is.
public protocol PreEncodedJSON: Encodable, Sendable {
    var json: [UInt8] { get }
}

extension PreEncodedJSON {
    /// The generic path (rarely taken): re-decodes the bytes so any encoder can embed them.
    public func encode(to encoder: any Encoder) throws {
        try JSONCoding.decoder.decode(JSONValue.self, from: Data(json)).encode(to: encoder)
    }
}

/// A record already encoded as the wire's JSON, with the version for its `ETag`.
public struct EncodedRecord: PreEncodedJSON {
    public var id: RecordID
    public var version: Int
    public var json: [UInt8]
    /// The schema `json` was written with, when read (not written): Airtable's routes rewrite the
    /// record with it, and it is as current as the record (the read cache is emptied when it changes).
    var schema: TableSchema?

    init(id: RecordID, version: Int, json: [UInt8], schema: TableSchema? = nil) {
        self.id = id
        self.version = version
        self.json = json
        self.schema = schema
    }
}

/// Any answer already encoded as the wire's JSON.
public struct EncodedJSON: PreEncodedJSON {
    public var json: [UInt8]
}

/// Writes records' wire JSON straight from their stored form.
///
/// Stored cells are JSON that this server's own encoder wrote, keyed by field id. Serving a record
/// only renames the keys: the value bytes are copied, never decoded and re-encoded, which is most
/// of the cost of a read.
enum RecordJSON {
    /// Appends `{"created_at":…,"fields":{…},"id":…,"table_id":…,"updated_at":…,"version":…}`
    /// (keys sorted, as the encoder writes them).
    static func append(
        to output: inout [UInt8],
        id: String,
        storedFields: String,
        version: Int,
        createdAt: Int64,
        updatedAt: Int64,
        schema: TableSchema,
        visible: Set<String>?
    ) {
        output.append(contentsOf: #"{"created_at":""#.utf8)
        output.append(contentsOf: Timestamp.format(Date(millisecondsSince1970: createdAt)).utf8)
        output.append(contentsOf: #"","fields":{"#.utf8)
        var cells: [(name: String, value: Substring.UTF8View)] = []
        forEachMember(of: storedFields) { key, value in
            guard let field = schema.fieldsByID[key] else { return }
            if let visible, !visible.contains(field.name) { return }
            cells.append((field.name, value))
        }
        cells.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        for (index, cell) in cells.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            appendString(cell.name, to: &output)
            output.append(UInt8(ascii: ":"))
            output.append(contentsOf: cell.value)
        }
        output.append(contentsOf: #"},"id":""#.utf8)
        output.append(contentsOf: id.utf8)
        output.append(contentsOf: #"","table_id":""#.utf8)
        output.append(contentsOf: schema.table.id.rawValue.utf8)
        output.append(contentsOf: #"","updated_at":""#.utf8)
        output.append(contentsOf: Timestamp.format(Date(millisecondsSince1970: updatedAt)).utf8)
        output.append(contentsOf: #"","version":"#.utf8)
        output.append(contentsOf: String(version).utf8)
        output.append(UInt8(ascii: "}"))
    }

    /// Calls `body` with each key and raw value of a JSON object's top level.
    ///
    /// The input is JSON this server wrote; on anything unexpected it stops rather than guessing.
    /// Keys with escapes are unescaped (stored keys are field ids and never have any; names in
    /// answers may).
    static func forEachMember(of json: String, _ body: (String, Substring.UTF8View) -> Void) {
        forEachMember(of: Substring(json).utf8, body)
    }

    /// ``forEachMember(of:_:)`` over a part of a larger text (a member's raw value).
    static func forEachMember(of bytes: Substring.UTF8View, _ body: (String, Substring.UTF8View) -> Void) {
        let text = Substring(bytes)
        var scanner = JSONScanner(bytes: bytes)
        scanner.skipWhitespace()
        guard scanner.consume(UInt8(ascii: "{")) else { return }
        while true {
            scanner.skipWhitespace()
            guard scanner.peek == UInt8(ascii: "\"") else { return }
            let keyStart = bytes.index(after: scanner.index)
            guard scanner.skipString() else { return }
            let raw = text[keyStart..<bytes.index(before: scanner.index)]
            let key: String
            if raw.utf8.contains(UInt8(ascii: "\\")) {
                guard let decoded = try? JSONCoding.decoder.decode(String.self, from: Data("\"\(raw)\"".utf8)) else {
                    return
                }
                key = decoded
            } else {
                key = String(raw)
            }
            scanner.skipWhitespace()
            guard scanner.consume(UInt8(ascii: ":")) else { return }
            scanner.skipWhitespace()
            let valueStart = scanner.index
            guard scanner.skipValue() else { return }
            body(key, text[valueStart..<scanner.index].utf8)
            scanner.skipWhitespace()
            guard scanner.consume(UInt8(ascii: ",")) else { return }
        }
    }

    /// Calls `body` with each raw element of a JSON array (JSON this server wrote).
    static func forEachElement(of bytes: Substring.UTF8View, _ body: (Substring.UTF8View) -> Void) {
        let text = Substring(bytes)
        var scanner = JSONScanner(bytes: bytes)
        scanner.skipWhitespace()
        guard scanner.consume(UInt8(ascii: "[")) else { return }
        scanner.skipWhitespace()
        if scanner.peek == UInt8(ascii: "]") { return }
        while true {
            scanner.skipWhitespace()
            let start = scanner.index
            guard scanner.skipValue() else { return }
            body(text[start..<scanner.index].utf8)
            scanner.skipWhitespace()
            guard scanner.consume(UInt8(ascii: ",")) else { return }
        }
    }

    /// The stored-cells object `{"fld…": value, …}` with keys sorted.
    static func storedObject(_ members: [String: [UInt8]]) -> String {
        var output: [UInt8] = [UInt8(ascii: "{")]
        for (index, key) in members.keys.sorted().enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            appendString(key, to: &output)
            output.append(UInt8(ascii: ":"))
            output.append(contentsOf: members[key] ?? Array("null".utf8))
        }
        output.append(UInt8(ascii: "}"))
        return String(decoding: output, as: UTF8.self)
    }

    /// The JSON of one cell value.
    static func cell(_ value: FieldValue) throws -> [UInt8] {
        var output: [UInt8] = []
        switch value {
        case .null:
            output.append(contentsOf: "null".utf8)
        case .string(let string):
            appendString(string, to: &output)
        case .number(let number):
            if number == number.rounded(), abs(number) < 1e15 {
                output.append(contentsOf: String(Int64(number)).utf8)
            } else {
                output.append(contentsOf: "\(number)".utf8)
            }
        case .bool(let bool):
            output.append(contentsOf: (bool ? "true" : "false").utf8)
        case .strings(let strings):
            output.append(UInt8(ascii: "["))
            for (index, string) in strings.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                appendString(string, to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .attachments(let attachments):
            output.append(contentsOf: try JSONCoding.encoder.encode(attachments))
        }
        return output
    }

    /// The stored cells of a record as raw JSON values by field id.
    static func members(of storedFields: String) -> [String: [UInt8]] {
        var members: [String: [UInt8]] = [:]
        forEachMember(of: storedFields) { key, value in members[key] = Array(value) }
        return members
    }

    /// Appends `string` as a JSON string literal.
    static func appendString(_ string: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): output.append(contentsOf: #"\\"#.utf8)
            case 0x0A: output.append(contentsOf: #"\n"#.utf8)
            case 0x0D: output.append(contentsOf: #"\r"#.utf8)
            case 0x09: output.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                output.append(contentsOf: #"\u00"#.utf8)
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0x0F)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}

/// Moves over JSON this server wrote, value by value, without decoding it.
struct JSONScanner {
    let bytes: Substring.UTF8View
    var index: Substring.UTF8View.Index

    init(bytes: Substring.UTF8View) {
        self.bytes = bytes
        index = bytes.startIndex
    }

    var peek: UInt8? { index < bytes.endIndex ? bytes[index] : nil }

    mutating func consume(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        index = bytes.index(after: index)
        return true
    }

    mutating func skipWhitespace() {
        while let byte = peek, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
            index = bytes.index(after: index)
        }
    }

    /// Moves past a string starting at `index` (at its opening quote).
    mutating func skipString() -> Bool {
        index = bytes.index(after: index)
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\") {
                index = bytes.index(after: index)
                guard index < bytes.endIndex else { return false }
            } else if byte == UInt8(ascii: "\"") {
                index = bytes.index(after: index)
                return true
            }
            index = bytes.index(after: index)
        }
        return false
    }

    /// Moves past one value of any kind.
    mutating func skipValue() -> Bool {
        guard let first = peek else { return false }
        switch first {
        case UInt8(ascii: "\""):
            return skipString()
        case UInt8(ascii: "["), UInt8(ascii: "{"):
            var depth = 0
            while index < bytes.endIndex {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    guard skipString() else { return false }
                    continue
                }
                if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{") { depth += 1 }
                if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") {
                    depth -= 1
                    if depth == 0 {
                        index = bytes.index(after: index)
                        return true
                    }
                }
                index = bytes.index(after: index)
            }
            return false
        default:
            while let byte = peek, byte != UInt8(ascii: ","), byte != UInt8(ascii: "}"), byte != UInt8(ascii: "]") {
                index = bytes.index(after: index)
            }
            return true
        }
    }
}
