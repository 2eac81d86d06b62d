import PyAirtableModels

/// A fast path for the body of record writes, `{"fields": {…}}`, for the plain values almost every
/// write carries: null, strings without escapes, numbers, booleans and lists of such strings.
///
/// `FieldValue`'s `Decodable` tries each kind in turn, and every wrong guess throws; at thousands of
/// writes a second that is most of the decoding time. Anything this parser does not handle for
/// certain (escapes, attachments, other keys, duplicate names, malformed JSON) makes it return `nil`,
/// and the caller decodes with `JSONDecoder`, whose answers and error messages stay the contract.
enum RecordFieldsParser {
    static func parse(_ bytes: some Collection<UInt8>) -> [String: FieldValue]? {
        let parsed = bytes.withContiguousStorageIfAvailable { buffer -> [String: FieldValue]? in
            var parser = Parser(bytes: buffer)
            return parser.body()
        }
        return parsed ?? nil
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        mutating func body() -> [String: FieldValue]? {
            guard consume(UInt8(ascii: "{")), string() == "fields", consume(UInt8(ascii: ":")),
                let fields = object(), consume(UInt8(ascii: "}"))
            else { return nil }
            skipWhitespace()
            return index == bytes.count ? fields : nil
        }

        private mutating func object() -> [String: FieldValue]? {
            guard consume(UInt8(ascii: "{")) else { return nil }
            var fields: [String: FieldValue] = [:]
            if consume(UInt8(ascii: "}")) { return fields }
            repeat {
                guard let name = string(), consume(UInt8(ascii: ":")), let value = value(),
                    fields.updateValue(value, forKey: name) == nil
                else { return nil }
            } while consume(UInt8(ascii: ","))
            return consume(UInt8(ascii: "}")) ? fields : nil
        }

        private mutating func value() -> FieldValue? {
            skipWhitespace()
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "\""): return string().map(FieldValue.string)
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "["): return strings().map(FieldValue.strings)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number().map(FieldValue.number)
            default: return nil
            }
        }

        private mutating func strings() -> [String]? {
            guard consume(UInt8(ascii: "[")) else { return nil }
            var strings: [String] = []
            if consume(UInt8(ascii: "]")) { return strings }
            repeat {
                guard let string = string() else { return nil }
                strings.append(string)
            } while consume(UInt8(ascii: ","))
            return consume(UInt8(ascii: "]")) ? strings : nil
        }

        /// A string without escapes or control characters, valid UTF-8.
        private mutating func string() -> String? {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            let start = index + 1
            var end = start
            while end < bytes.count {
                let byte = bytes[end]
                if byte == UInt8(ascii: "\"") { break }
                if byte == UInt8(ascii: "\\") || byte < 0x20 { return nil }
                end += 1
            }
            guard end < bytes.count else { return nil }
            index = end + 1
            return String(validating: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        }

        /// A number in JSON's grammar, finite as a Double.
        private mutating func number() -> Double? {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits(allowLeadingZero: false) else { return nil }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits(allowLeadingZero: true) else { return nil }
            }
            if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard digits(allowLeadingZero: true) else { return nil }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            guard let number = Double(text), number.isFinite else { return nil }
            return number
        }

        private mutating func digits(allowLeadingZero: Bool) -> Bool {
            let start = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            if index == start { return false }
            // JSON forbids leading zeros in the integer part ("01").
            return allowLeadingZero || index - start == 1 || bytes[start] != UInt8(ascii: "0")
        }

        private mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
            index += count
            return true
        }

        private mutating func consume(_ byte: UInt8) -> Bool {
            skipWhitespace()
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
}
