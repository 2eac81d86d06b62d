import PyAirtableModels

/// A fast path for the body of record writes, `{"fields": {…}}`, for the plain values almost every
/// write carries: null, strings, numbers, booleans and lists of strings.
///
/// `FieldValue`'s `Decodable` tries each kind in turn, and every wrong guess throws; at thousands of
/// writes a second that is most of the decoding time. Anything this parser does not handle for
/// certain (attachments, other keys, duplicate names, malformed JSON) makes it return `nil`, and the
/// caller decodes with `JSONDecoder`, whose answers and error messages stay the contract.
enum RecordFieldsParser {
    static func parse(_ bytes: some Collection<UInt8>) -> [String: FieldValue]? {
        let parsed = bytes.withContiguousStorageIfAvailable { buffer -> [String: FieldValue]? in
            var parser = JSONTextParser(bytes: buffer)
            var fields: [String: FieldValue]?
            let complete = parser.members { parser, key in
                guard key == "fields", fields == nil else { return false }
                var cells: [String: FieldValue] = [:]
                let plain = parser.members { parser, name in
                    guard cells[name] == nil, let value = parser.value().flatMap(Self.plainValue) else { return false }
                    cells[name] = value
                    return true
                }
                fields = cells
                return plain
            }
            parser.skipWhitespace()
            return complete && parser.isAtEnd ? fields : nil
        }
        return parsed ?? nil
    }

    /// The cell a plain JSON value is, as `FieldValue`'s decoding makes it; `nil` for other shapes.
    private static func plainValue(_ value: JSONValue) -> FieldValue? {
        switch value {
        case .null: return .null
        case .bool(let bool): return .bool(bool)
        case .number(let number): return .number(number)
        case .string(let string): return .string(string)
        case .array(let elements):
            var strings: [String] = []
            strings.reserveCapacity(elements.count)
            for element in elements {
                guard case .string(let string) = element else { return nil }
                strings.append(string)
            }
            return .strings(strings)
        case .object: return nil
        }
    }
}
