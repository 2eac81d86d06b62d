import Foundation
import PyAirtableModels

/// Writes Airtable's form of a record straight from the wire JSON `/api/v1` serves (``RecordJSON``),
/// without decoding the cells: `{"id":…,"createdTime":…,"fields":{…}}`, empty cells (`null`, `false`,
/// `""`, `[]`) left out. Only attachment cells are decoded, to name their content type `type`.
enum AirtableRecordJSON {
    /// How the record is written.
    struct Options {
        /// Cells keyed by field id instead of name.
        var byFieldID = false
        /// `"commentCount"` added (`recordMetadata[]=commentCount`): each record's count by id (none: 0).
        var commentCounts: [String: Int]?
        /// Signed URLs for attachments (their `url`); without, the stored one is kept.
        var attachments: AttachmentURLs?
    }

    /// Appends Airtable's form of `record` (an `/api/v1` record's JSON) to `output`.
    /// - Returns: `false`, with nothing appended, when the record is not in `schema`'s table or is not
    ///   a record's JSON.
    @discardableResult
    static func append(
        fromAPI record: Substring.UTF8View,
        schema: TableSchema,
        options: Options,
        to output: inout [UInt8]
    ) -> Bool {
        var id: Substring.UTF8View?
        var createdAt: Substring.UTF8View?
        var tableID: Substring.UTF8View?
        var fields: Substring.UTF8View?
        RecordJSON.forEachMember(of: record) { key, value in
            switch key {
            case "id": id = value
            case "created_at": createdAt = value
            case "table_id": tableID = value
            case "fields": fields = value
            default: break
            }
        }
        guard let id, let createdAt, let tableID, let fields,
            tableID.elementsEqual(#""\#(schema.table.id.rawValue)""#.utf8)
        else { return false }
        output.append(contentsOf: #"{"id":"#.utf8)
        output.append(contentsOf: id)
        output.append(contentsOf: #","createdTime":"#.utf8)
        output.append(contentsOf: createdAt)
        output.append(contentsOf: #","fields":{"#.utf8)
        var first = true
        RecordJSON.forEachMember(of: fields) { name, value in
            guard let field = schema.fieldsByName[name], !isEmpty(value) else { return }
            if !first { output.append(UInt8(ascii: ",")) }
            first = false
            RecordJSON.appendString(options.byFieldID ? field.id.rawValue : name, to: &output)
            output.append(UInt8(ascii: ":"))
            if field.type == .multipleAttachments {
                appendAttachments(value, urls: options.attachments, to: &output)
            } else {
                output.append(contentsOf: value)
            }
        }
        output.append(UInt8(ascii: "}"))
        if let counts = options.commentCounts {
            output.append(contentsOf: #","commentCount":"#.utf8)
            let key = String(Substring(id).dropFirst().dropLast())
            output.append(contentsOf: String(counts[key] ?? 0).utf8)
        }
        output.append(UInt8(ascii: "}"))
        return true
    }

    /// Airtable's form of one `/api/v1` record's JSON, or `nil` (see ``append(fromAPI:schema:options:to:)``).
    static func record(fromAPI json: [UInt8], schema: TableSchema, options: Options) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(json.count)
        let text = Substring(decoding: json, as: UTF8.self)
        return append(fromAPI: text.utf8, schema: schema, options: options, to: &output) ? output : nil
    }

    private static func isEmpty(_ value: Substring.UTF8View) -> Bool {
        value.elementsEqual("null".utf8) || value.elementsEqual("false".utf8) || value.elementsEqual(#""""#.utf8)
            || value.elementsEqual("[]".utf8)
    }

    /// Attachment objects with `content_type` renamed `type`, as Airtable names it, and signed URLs.
    private static func appendAttachments(
        _ value: Substring.UTF8View,
        urls: AttachmentURLs?,
        to output: inout [UInt8]
    ) {
        guard let decoded = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(value)) else {
            output.append(contentsOf: value)
            return
        }
        let renamed = urls.map { $0.airtable(decoded) } ?? AirtableCells.renameContentType(decoded)
        if let encoded = try? AirtableJSON.encoder.encode(renamed) {
            output.append(contentsOf: encoded)
        } else {
            output.append(contentsOf: value)
        }
    }
}
