import Foundation
import PyAirtableModels
import Testing

@testable import ReferenceServer

@Suite(
    "Record write bodies: the fast parser agrees with JSONDecoder or leaves the body to it",
    .timeLimit(.minutes(15))
)
struct RecordFieldsParserTests {
    static let plain: [String] = [
        #"{"fields":{}}"#,
        #"{"fields":{"Name":"line\nbreak \"quoted\" \u00e9"}}"#,
        #"{"fields":{"Score":5}}"#,
        #" { "fields" : { "Name" : "Ada" , "Score" : -12.5e2 , "Done" : true , "Gone" : null } } "#,
        #"{"fields":{"Tags":["a","b"],"Empty":[],"Off":false,"Zero":0,"Frac":0.25,"Big":1E+21}}"#,
        #"{"fields":{"Ünïcødé":"日本語 ✓","Score":-0}}"#,
    ]

    static let leftToDecoder: [String] = [
        #"{"fields":{"Files":[{"id":"fil_00000000000000000000000000"}]}}"#,  // attachments
        #"{"fields":{"A":1,"A":2}}"#,  // a duplicate name
        #"{"fields":{"Score":01}}"#,  // a leading zero
        #"{"fields":{"Score":1.}}"#,
        #"{"fields":{"Score":1e400}}"#,  // not finite
        #"{"fields":{"Score":NaN}}"#,
        #"{"fields":{"Name":"a"},"typecast":true}"#,  // another key
        #"{"fields":{"Name":"a"}"#,  // truncated
        #"{"fields":{"Name":"a"}} trailing"#,
        #"{"fields":[1]}"#,
        #"{"fields":{"Mixed":["a",1]}}"#,
        #"{"fields":{"Nested":{"a":1}}}"#,
        "{\"fields\":{\"Raw\":\"tab\there\"}}",  // a control character
        "[]",
    ]

    @Test("plain bodies parse to exactly what JSONDecoder makes of them")
    func plainBodies() throws {
        for body in Self.plain {
            let fast = try #require(RecordFieldsParser.parse(Array(body.utf8)), "\(body)")
            let decoded = try JSONCoding.decoder.decode(RecordFieldsRequest.self, from: Data(body.utf8)).fields
            #expect(fast == decoded, "\(body)")
        }
    }

    @Test("attachments, other keys, repeats and malformed bodies are left to JSONDecoder", arguments: leftToDecoder)
    func otherBodies(body: String) {
        #expect(RecordFieldsParser.parse(Array(body.utf8)) == nil)
    }

    @Test("invalid UTF-8 in a name or value is left to JSONDecoder")
    func invalidUTF8() {
        var bytes = Array(#"{"fields":{"Name":"x"}}"#.utf8)
        bytes[bytes.count - 4] = 0xFF
        #expect(RecordFieldsParser.parse(bytes) == nil)
    }
}
