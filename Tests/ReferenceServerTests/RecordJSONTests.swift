import Foundation
import PyAirtableModels
import Testing

@testable import ReferenceServer

@Suite("Record JSON written from stored cells", .timeLimit(.minutes(15)))
struct RecordJSONTests {
    static func schema() -> TableSchema {
        let now = Date(timeIntervalSince1970: 0)
        let tableID = TableID.generate()
        let fields = ["Name", "Quote \"q\"", "Score", "Tags", "Files", "Done", "Notes\n"].enumerated().map {
            Field(id: .generate(), tableID: tableID, name: $1, type: .singleLineText, createdAt: now, updatedAt: now)
        }
        let table = PyAirtableModels.Table(
            id: tableID,
            baseID: .generate(),
            name: "T",
            primaryFieldID: fields[0].id,
            fields: fields,
            views: [],
            createdAt: now,
            updatedAt: now
        )
        return TableSchema(table: table, workspaceID: .generate())
    }

    @Test("the fast writer decodes to the same record the Codable path gives, for awkward values")
    func matchesCodable() throws {
        let schema = Self.schema()
        let values: [FieldValue] = [
            .string("plain"), .string("quote \" backslash \\ newline \n tab \t bell \u{07} é 🚀 }{]["),
            .number(-12.5), .number(3), .number(1e21), .strings(["a,b", "{c}", "\"d\""]),
            .attachments([Attachment(id: .generate(), filename: "x}.pdf", contentType: "application/pdf", size: 3)]),
            .bool(true), .string(""),
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var stored: [String: FieldValue] = [:]
            var expected: [String: FieldValue] = [:]
            for field in schema.table.fields where Bool.random(using: &generator) {
                let value = values.randomElement(using: &generator) ?? .null
                stored[field.id.rawValue] = value
                expected[field.name] = value
            }
            // A cell of a deleted field is skipped.
            stored[FieldID.generate().rawValue] = .string("orphan")
            let storedJSON = String(decoding: try JSONCoding.encoder.encode(stored), as: UTF8.self)
            var output: [UInt8] = []
            let id = RecordID.generate()
            RecordJSON.append(
                to: &output,
                id: id.rawValue,
                storedFields: storedJSON,
                version: 7,
                createdAt: 1_000,
                updatedAt: 1_800_000_000_123,
                schema: schema,
                visible: nil
            )
            let decoded = try JSONCoding.decoder.decode(PyAirtableModels.Record.self, from: Data(output))
            #expect(decoded.fields == expected)
            #expect(decoded.id == id)
            #expect(decoded.version == 7)
            #expect(decoded.tableID == schema.table.id)
            #expect(Timestamp.format(decoded.updatedAt) == "2027-01-15T08:00:00.123Z")
            // Keys come out sorted, as the encoder writes them, so equal records are equal bytes.
            let reencoded = try JSONCoding.encoder.encode(decoded)
            #expect(
                try JSONCoding.decoder.decode(JSONValue.self, from: reencoded)
                    == JSONCoding.decoder.decode(JSONValue.self, from: Data(output))
            )
        }
    }

    @Test("projection keeps only the visible fields")
    func projection() throws {
        let schema = Self.schema()
        let stored = Dictionary(
            uniqueKeysWithValues: schema.table.fields.map { ($0.id.rawValue, FieldValue.string($0.name)) }
        )
        var output: [UInt8] = []
        RecordJSON.append(
            to: &output,
            id: RecordID.generate().rawValue,
            storedFields: String(decoding: try JSONCoding.encoder.encode(stored), as: UTF8.self),
            version: 1,
            createdAt: 0,
            updatedAt: 0,
            schema: schema,
            visible: ["Name", "Score"]
        )
        let decoded = try JSONCoding.decoder.decode(PyAirtableModels.Record.self, from: Data(output))
        #expect(Set(decoded.fields.keys) == ["Name", "Score"])
    }
}

@Suite("Airtable's record JSON written from /api/v1 bytes", .timeLimit(.minutes(15)))
struct AirtableRecordJSONTests {
    static func schema() -> TableSchema {
        let now = Date(timeIntervalSince1970: 0)
        let tableID = TableID.generate()
        let fields: [(String, FieldType)] = [
            ("Name", .singleLineText), ("Quote \"q\" \\ back", .singleLineText), ("Score", .number),
            ("Tags", .multipleSelects), ("Files", .multipleAttachments), ("Done", .checkbox),
            ("Notes\n", .multilineText),
        ]
        let built = fields.map {
            Field(id: .generate(), tableID: tableID, name: $0.0, type: $0.1, createdAt: now, updatedAt: now)
        }
        let table = PyAirtableModels.Table(
            id: tableID,
            baseID: .generate(),
            name: "T",
            primaryFieldID: built[0].id,
            fields: built,
            views: [],
            createdAt: now,
            updatedAt: now
        )
        return TableSchema(table: table, workspaceID: .generate())
    }

    @Test(
        "the byte writer gives what decoding and re-encoding gives: empties left out, escaped names, attachments' type"
    )
    func matchesDecoding() throws {
        let schema = Self.schema()
        let text: [FieldValue] = [
            .string("plain"), .string("quote \" backslash \\ newline \n é 🚀 }{]["), .string(""), .null,
        ]
        let values: [FieldType: [FieldValue]] = [
            .singleLineText: text, .multilineText: text, .number: [.number(0), .number(-12.5), .null],
            .multipleSelects: [.strings(["a,b", "{c}"]), .strings([]), .null], .checkbox: [.bool(true), .bool(false)],
            .multipleAttachments: [
                .attachments([Attachment(id: .generate(), filename: "x}.pdf", contentType: "application/pdf", size: 3)]
                ),
                .attachments([]),
            ],
        ]
        var generator = SystemRandomNumberGenerator()
        for round in 0..<300 {
            var stored: [String: FieldValue] = [:]
            for field in schema.table.fields where Bool.random(using: &generator) {
                stored[field.id.rawValue] = values[field.type]?.randomElement(using: &generator) ?? .null
            }
            var api: [UInt8] = []
            RecordJSON.append(
                to: &api,
                id: RecordID.generate().rawValue,
                storedFields: String(decoding: try JSONCoding.encoder.encode(stored), as: UTF8.self),
                version: 3,
                createdAt: 1_800_000_000_123,
                updatedAt: 1_800_000_000_456,
                schema: schema,
                visible: nil
            )
            let byFieldID = round % 2 == 1
            let fast = try #require(
                AirtableRecordJSON.record(
                    fromAPI: api,
                    schema: schema,
                    options: .init(byFieldID: byFieldID, commentCounts: byFieldID ? [:] : nil)
                )
            )
            var output = AirtableCells.Output()
            output.byFieldID = byFieldID
            output.commentCounts = byFieldID ? [:] : nil
            let slow = try AirtableJSON.encoder.encode(
                AirtableCells.record(
                    try JSONCoding.decoder.decode(AirtableCells.StoredRecordJSON.self, from: Data(api)),
                    schema: schema,
                    output: output
                )
            )
            let fastObject = try #require(try JSONSerialization.jsonObject(with: Data(fast)) as? NSDictionary)
            let slowObject = try #require(try JSONSerialization.jsonObject(with: slow) as? NSDictionary)
            #expect(fastObject == slowObject, "\(String(decoding: fast, as: UTF8.self))")
            let fields = try #require(fastObject["fields"] as? [String: Any])
            #expect(fields.values.allSatisfy { !($0 is NSNull) && ($0 as? String) != "" })
        }
        // A record of another table is refused, not served as this one's.
        var other: [UInt8] = []
        RecordJSON.append(
            to: &other,
            id: RecordID.generate().rawValue,
            storedFields: "{}",
            version: 1,
            createdAt: 0,
            updatedAt: 0,
            schema: RecordJSONTests.schema(),
            visible: nil
        )
        #expect(AirtableRecordJSON.record(fromAPI: other, schema: schema, options: .init()) == nil)
    }
}
