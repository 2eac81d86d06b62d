import Foundation
import Testing

@testable import PyAirtableModels

@Suite("Identifiers")
struct IdentifierTests {
    @Test("generated ids have the prefix and 14 base-62 characters, and validate")
    func generated() {
        for _ in 0..<100 {
            let id = RecordID.generate()
            #expect(id.rawValue.hasPrefix("rec"))
            #expect(id.rawValue.count == 17)
            #expect(RecordID(id.rawValue) == id)
        }
    }

    @Test(
        "wrong prefixes, lengths and characters are rejected",
        arguments: ["tbl0123456789abcd", "rec0123456789abc", "rec0123456789abcde", "rec0123456789abc-", "", "rec"]
    )
    func rejected(_ raw: String) {
        #expect(RecordID(raw) == nil)
        #expect(throws: IdentifierError.self) { try RecordID(validating: raw) }
    }

    @Test("decoding checks the prefix")
    func decoding() throws {
        let good = try JSONCoding.decoder.decode([TableID].self, from: Data(#"["tbl0123456789abcd"]"#.utf8))
        #expect(good.first?.rawValue == "tbl0123456789abcd")
        #expect(throws: DecodingError.self) {
            try JSONCoding.decoder.decode([TableID].self, from: Data(#"["rec0123456789abcd"]"#.utf8))
        }
    }
}

@Suite("Wire coding")
struct WireCodingTests {
    @Test("record fields keep user-chosen names verbatim (no key strategy)")
    func fieldNames() throws {
        let record = Record(
            id: RecordID.generate(),
            tableID: TableID.generate(),
            fields: ["First Name": "Ada", "camelCase": 1, "snake_case": true, "Tags": .strings(["a"])],
            createdAt: Date(timeIntervalSince1970: 0),
            updatedAt: Date(timeIntervalSince1970: 0.5)
        )
        let data = try JSONCoding.encoder.encode(record)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let fields = try #require(object["fields"] as? [String: Any])
        #expect(Set(fields.keys) == ["First Name", "camelCase", "snake_case", "Tags"])
        #expect(object["table_id"] != nil)
        #expect(object["updated_at"] as? String == "1970-01-01T00:00:00.500Z")
        #expect(try JSONCoding.decoder.decode(Record.self, from: data) == record)
    }

    @Test("field values decode by JSON kind")
    func fieldValues() throws {
        let json = #"{"a": null, "b": "x", "c": 2.5, "d": false, "e": ["x", "y"], "f": [{"id": "fil0123456789abcd"}]}"#
        let values = try JSONCoding.decoder.decode([String: FieldValue].self, from: Data(json.utf8))
        #expect(values["a"] == .null)
        #expect(values["b"] == .string("x"))
        #expect(values["c"] == .number(2.5))
        #expect(values["d"] == .bool(false))
        #expect(values["e"] == .strings(["x", "y"]))
        #expect(values["f"] == .attachments([Attachment(id: FileID(unchecked: "fil0123456789abcd"))]))
        #expect(throws: DecodingError.self) {
            try JSONCoding.decoder.decode([String: FieldValue].self, from: Data(#"{"a": {"b": 1}}"#.utf8))
        }
    }

    @Test("batch operations round-trip and reject unknown ops")
    func batch() throws {
        let request = BatchRequest(operations: [
            .create(fields: ["Name": "x"]), .update(id: RecordID.generate(), fields: ["Score": 2], ifVersion: 3),
            .delete(id: RecordID.generate(), ifVersion: nil),
        ])
        let data = try JSONCoding.encoder.encode(request)
        #expect(try JSONCoding.decoder.decode(BatchRequest.self, from: data) == request)
        #expect(throws: DecodingError.self) {
            try JSONCoding.decoder.decode(BatchOperation.self, from: Data(#"{"op": "upsert"}"#.utf8))
        }
    }

    @Test("pages always carry next_cursor, null on the last page")
    func page() throws {
        let data = try JSONCoding.encoder.encode(Page<Int>(data: [1]))
        #expect(String(decoding: data, as: UTF8.self).contains(#""next_cursor":null"#))
    }

    @Test("sort lists parse, and malformed entries name the bad part")
    func sortSpecs() throws {
        #expect(
            try SortSpec.parseList("Name:asc, Score:DESC,Due")
                == [.init(field: "Name"), .init(field: "Score", direction: .desc), .init(field: "Due")]
        )
        #expect(throws: SortSpecError(part: "Name:sideways")) { try SortSpec.parseList("Name:sideways") }
        #expect(throws: SortSpecError.self) { try SortSpec.parseList("Name,,Score") }
    }

    @Test("version tags", arguments: [("\"3\"", 3), ("W/\"4\"", 4), ("5", 5)])
    func versionTags(_ raw: String, _ version: Int) {
        #expect(VersionTag.parse(raw) == version)
        #expect(VersionTag.parse(VersionTag.format(version)) == version)
    }

    @Test("realtime frames round-trip")
    func frames() throws {
        let frames: [RealtimeClientFrame] = [
            .subscribe(id: "s1", channel: "records", filters: EventFilter(tableID: TableID.generate()), since: 7),
            .unsubscribe(id: "s1"), .ping,
        ]
        for frame in frames {
            let data = try JSONCoding.encoder.encode(frame)
            #expect(try JSONCoding.decoder.decode(RealtimeClientFrame.self, from: data) == frame)
        }
    }
}

@Suite("Timestamps")
struct TimestampTests {
    @Test("the hand-written formatter agrees with Foundation's ISO-8601 style across eras, to the millisecond")
    func agreesWithFoundation() {
        let wholeSeconds = Date.ISO8601FormatStyle(timeZone: .gmt)
        var generator = SystemRandomNumberGenerator()
        let samples: [Int64] =
            [0, -1, 1, 999, -999, 951_782_400_000, 4_107_542_400_999, -2_208_988_800_000, 1_709_164_800_500]
            + (0..<2000).map { _ in Int64.random(in: -6_000_000_000_000...8_000_000_000_000, using: &generator) }
        for milliseconds in samples {
            let date = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
            var seconds = milliseconds / 1000
            var fraction = milliseconds % 1000
            if fraction < 0 {
                fraction += 1000
                seconds -= 1
            }
            let whole = wholeSeconds.format(Date(timeIntervalSince1970: Double(seconds)))
            let expected = whole.dropLast() + "." + String(1000 + fraction).dropFirst() + "Z"
            #expect(Timestamp.format(date) == String(expected), "\(milliseconds)")
            let parsed = Timestamp.parse(Timestamp.format(date))
            #expect(parsed.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } == milliseconds)
        }
    }
}
