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
    static func forEachMember(of json: String, _ body: (String, Substring.UTF8View) -> Void) {
        let text = Substring(json)
        let bytes = text.utf8
        var index = bytes.startIndex
        func skipWhitespace() {
            while index < bytes.endIndex, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[index]) {
                index = bytes.index(after: index)
            }
        }
        /// Moves past a string starting at `index` (at its opening quote).
        func skipString() -> Bool {
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
        func skipValue() -> Bool {
            guard index < bytes.endIndex else { return false }
            switch bytes[index] {
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
                while index < bytes.endIndex,
                    ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]")].contains(bytes[index])
                {
                    index = bytes.index(after: index)
                }
                return true
            }
        }
        skipWhitespace()
        guard index < bytes.endIndex, bytes[index] == UInt8(ascii: "{") else { return }
        index = bytes.index(after: index)
        while true {
            skipWhitespace()
            guard index < bytes.endIndex, bytes[index] == UInt8(ascii: "\"") else { return }
            let keyStart = bytes.index(after: index)
            guard skipString() else { return }
            // Keys are field ids: letters and digits, never escaped.
            let key = String(text[keyStart..<bytes.index(before: index)])
            skipWhitespace()
            guard index < bytes.endIndex, bytes[index] == UInt8(ascii: ":") else { return }
            index = bytes.index(after: index)
            skipWhitespace()
            let valueStart = index
            guard skipValue() else { return }
            body(key, text[valueStart..<index].utf8)
            skipWhitespace()
            guard index < bytes.endIndex else { return }
            if bytes[index] == UInt8(ascii: ",") {
                index = bytes.index(after: index)
                continue
            }
            return
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
