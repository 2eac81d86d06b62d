import Foundation
import PropertyBased
import Testing

@testable import PyAirtableModels

private let jsonPieces: [String] = [
    "[", "]", "{", "}", ",", ":", "\"a\"", "\"\\\"[\"", "\"\\u00e9\"", "1", "-2.5e3", "true", "null", " ", "\"",
    "\\", "[[", "]]", "{\"k\":", "é", "01", "1e999",
]

@Suite("JSON parsing limits")
struct JSONLimitsTests {
    @Test("nesting past the limit is refused, by the parser and by the scanner, without deep recursion")
    func deepNesting() {
        for depth in [5, 512, 513, 100_000] {
            let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            let parsed = JSONValue.parse(Array(text.utf8))
            #expect((parsed != nil) == (depth <= JSONValue.defaultMaximumParseDepth), "depth \(depth)")
            #expect(JSONNesting.offsetPastDepth(512, in: text.utf8) == (depth > 512 ? 512 : nil))
        }
        #expect(JSONValue.parse(Array("[[[1]]]".utf8), maximumDepth: 2) == nil)
        #expect(JSONValue.parse(Array("[[[1]]]".utf8), maximumDepth: 3) == .array([.array([.array([.number(1)])])]))
    }

    @Test("brackets inside strings do not count")
    func stringsAreSkipped() {
        #expect(JSONNesting.offsetPastDepth(1, in: #"["[[[{{", "\"[["]"#.utf8) == nil)
        #expect(JSONNesting.offsetPastDepth(1, in: #"["x", ["#.utf8) == 6)
    }

    /// Whatever the bytes, the parser ends, and it and the nesting scanner agree on what is too deep.
    @Test func parserAndScannerAgree() async {
        let text = Gen<String?>.element(of: jsonPieces).array(of: 0...80).map { $0.compactMap { $0 }.joined() }
        await propertyCheck(count: 500, input: text, Gen.int(in: 1...6)) { text, depth in
            let bytes = Array(text.utf8)
            let parsed = JSONValue.parse(bytes, maximumDepth: depth)
            let tooDeep = JSONNesting.offsetPastDepth(depth, in: bytes)
            if parsed != nil { #expect(tooDeep == nil, "\(text)") }
            if tooDeep != nil { #expect(parsed == nil, "\(text)") }
            // What the parser accepts, JSONDecoder accepts too.
            if parsed != nil {
                #expect((try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))) != nil, "\(text)")
            }
        }
    }
}
