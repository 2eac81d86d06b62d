/// Measures how deeply JSON text nests, without parsing it and without recursion.
///
/// Decoders walk JSON recursively; checking the nesting first with this single pass lets a server
/// refuse a hostile document (`[[[[…`) before any decoder sees it.
///
/// ```swift
/// if let offset = JSONNesting.offsetPastDepth(64, in: body) {
///     print("nested deeper than 64 levels at byte \(offset)")
/// }
/// ```
public enum JSONNesting {
    /// The byte offset of the first `[` or `{` that opens a level deeper than `maximumDepth`, or `nil`
    /// when the text stays within it. Brackets inside strings do not count; the text need not be valid
    /// JSON (that is for the decoder to judge).
    public static func offsetPastDepth(_ maximumDepth: Int, in bytes: some Collection<UInt8>) -> Int? {
        var depth = 0
        var inString = false
        var escaped = false
        var offset = 0
        for byte in bytes {
            defer { offset += 1 }
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maximumDepth { return offset }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
            default:
                break
            }
        }
        return nil
    }
}
