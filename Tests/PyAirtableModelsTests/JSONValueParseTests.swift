import Foundation
import Testing

@testable import PyAirtableModels

@Suite("JSONValue.parse: the byte-level parser agrees with JSONDecoder")
struct JSONValueParseTests {
    static let valid: [String] = [
        "null", "true", "false", "0", "-0", "12", "-12.5", "1e3", "1E-2", "6.02e+23", "0.000001",
        #""plain""#, #""""#, #""tab\tnew\nline \"quoted\" back\\slash \/ \b\f\r""#,
        #""\u00e9\u4e2d\ud83d\ude00 and é直接""#,
        "[]", "{}", "[1, \"two\", null, true, [false], {\"a\": {}}]",
        #" { "id" : "recA1b2C3d4E5f6G7" , "fields" : { "Name" : "Ada" , "Score" : 3 , "Tags" : [ "a" ] } } "#,
        #"{"a": 1, "a": 2}"#,
    ]

    static let invalid: [String] = [
        "", " ", "nul", "tru", "01", "1.", ".5", "-", "1e", "+1", "NaN", "Infinity", "1e400",
        #""unterminated"#, "\"raw\ttab\"", #""\x""#, #""\u12G4""#, #""\ud83d""#, #""\ud83d\u0041""#,
        "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\":1,}", "{a:1}", "[1]]", "{} {}", "[" + String(repeating: "[", count: 600),
    ]

    @Test("valid JSON parses to exactly the value JSONDecoder decodes", arguments: valid)
    func agrees(text: String) throws {
        let decoded = try JSONCoding.decoder.decode(JSONValue.self, from: Data(text.utf8))
        #expect(JSONValue.parse(Array(text.utf8)) == decoded)
    }

    @Test("invalid JSON is nil", arguments: invalid)
    func refuses(text: String) {
        #expect(JSONValue.parse(Array(text.utf8)) == nil)
    }

    @Test("event frames decode as JSONDecoder decodes them; other frames and bad ones fall back")
    func frames() throws {
        let event = Event(
            seq: 42,
            type: .recordUpdated,
            workspaceID: WorkspaceID(unchecked: "wspA1b2C3d4E5f6G7"),
            baseID: BaseID(unchecked: "appA1b2C3d4E5f6G7"),
            tableID: TableID(unchecked: "tblA1b2C3d4E5f6G7"),
            recordID: RecordID(unchecked: "recA1b2C3d4E5f6G7"),
            payload: .object(["fields": .object(["Name": .string("Ada \"A\" é"), "Score": .number(3.5)])]),
            actor: UserID(unchecked: "usrA1b2C3d4E5f6G7"),
            ts: Date(timeIntervalSince1970: 1_800_000_000.5)
        )
        let frames: [RealtimeServerFrame] = [
            .event(subscription: "s1", event: event),
            .event(
                subscription: "s2",
                event: Event(seq: 1, type: .workspaceCreated, payload: .null, actor: nil, ts: event.ts)
            ),
            .subscribed(subscription: "s1", seq: 7), .reset(subscription: "s1", seq: 9), .pong,
            .error(subscription: nil, error: APIErrorDetail(type: .validation, code: 400, message: "no")),
        ]
        for frame in frames {
            let text = String(decoding: try JSONCoding.encoder.encode(frame), as: UTF8.self)
            #expect(try RealtimeServerFrame.decode(text) == frame, "\(text)")
            #expect(
                try RealtimeServerFrame.decode(text)
                    == JSONCoding.decoder.decode(RealtimeServerFrame.self, from: Data(text.utf8))
            )
        }
        let eventText = String(decoding: try JSONCoding.encoder.encode(event), as: UTF8.self)
        #expect(try Event.decode(eventText) == event)

        // A bad id or a missing member is JSONDecoder's to report.
        let badID = eventText.replacingOccurrences(of: "recA1b2C3d4E5f6G7", with: "tblA1b2C3d4E5f6G7")
        #expect(throws: DecodingError.self) { try Event.decode(badID) }
        #expect(throws: DecodingError.self) { try RealtimeServerFrame.decode(#"{"type":"event","subscription":"s"}"#) }
        #expect(throws: DecodingError.self) { try RealtimeServerFrame.decode("not json") }
        let cut = String(decoding: try JSONCoding.encoder.encode(frames[0]), as: UTF8.self)
        for end in stride(from: 0, to: cut.utf8.count, by: 7) {
            let prefix = String(decoding: Array(cut.utf8.prefix(end)), as: UTF8.self)
            #expect(throws: DecodingError.self) { try RealtimeServerFrame.decode(prefix) }
        }
        // A repeated member is JSONDecoder's to settle (its first value wins).
        let repeated = #"{"type":"event","subscription":"a","subscription":"b","event":"# + eventText + "}"
        #expect(try RealtimeServerFrame.decode(repeated) == .event(subscription: "a", event: event))
    }
}
