// libFuzzer target: the byte-level JSON parser and the nesting scanner. Built by scripts/fuzz.sh.
import Foundation
import PyAirtableModels

@_cdecl("LLVMFuzzerTestOneInput")
public func jsonFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let depth = Int(size > 0 ? bytes[0] % 16 : 4) + 1
    let parsed = JSONValue.parse(bytes, maximumDepth: depth)
    let tooDeep = JSONNesting.offsetPastDepth(depth, in: bytes)
    if parsed != nil {
        // Whatever the parser accepts nests within its limit, and the scanner agrees.
        precondition(tooDeep == nil, "parsed, but the scanner says deeper than \(depth)")
        // What it accepts, it reads back the same after encoding.
        let encoded = try! JSONCoding.encoder.encode(parsed!)
        precondition(JSONValue.parse(encoded, maximumDepth: depth) == parsed, "round trip changed the value")
    }
    if let offset = tooDeep {
        precondition(offset < size)
        precondition(parsed == nil, "accepted JSON nested deeper than \(depth)")
    }
    return 0
}
