import Foundation
import GRDB
import PyAirtableModels

/// One record write of Airtable's Web API v0, as its routes hand it to the store. Cells are keyed by
/// field name and already converted from Airtable's JSON (see `AirtableCells`).
public enum AirtableRecordOperation: Sendable, Hashable {
    case create(fields: [String: FieldValue])
    /// PATCH merges the cells; PUT (`replace`) clears every cell it does not send.
    case update(id: RecordID, fields: [String: FieldValue], replace: Bool)
    /// `performUpsert` without a record id: matched on the write's merge fields.
    case upsert(fields: [String: FieldValue], replace: Bool)
    case delete(id: RecordID)
}

/// A v0 write request: up to 10 operations applied in one transaction, after the select choices its
/// `typecast` adds.
public struct AirtableRecordWrite: Sendable, Hashable {
    public var operations: [AirtableRecordOperation]
    /// Choices to add to select fields, by field id, in the order first written.
    public var newChoices: [FieldID: [String]]
    /// The fields an upsert matches records on (`fieldsToMergeOn`).
    public var mergeOn: [FieldID]

    public init(operations: [AirtableRecordOperation], newChoices: [FieldID: [String]] = [:], mergeOn: [FieldID] = []) {
        self.operations = operations
        self.newChoices = newChoices
        self.mergeOn = mergeOn
    }
}

extension SQLiteStore {
    /// Applies a v0 write in one transaction — all of it or none — with one event per record (and one
    /// per field whose choices grew), answering
    /// `{"created":[ids],"results":[record or {"deleted":true,"id":…}],"updated":[ids]}`.
    /// Writing records needs the editor role; so does adding choices by typecast, as on Airtable.
    public func airtableWrite(
        table: TableID,
        _ write: AirtableRecordWrite,
        context: WriteContext
    ) async throws -> WriteResult<EncodedJSON> {
        let actor = try context.requireActor()
        let maximumChoices = limits.maximumSelectChoices
        return try await perform(context) { db in
            var schema = try self.requireCachedTable(db, id: table, user: actor, minimum: .editor)
            if !write.newChoices.isEmpty {
                schema = try Self.addChoices(
                    db,
                    write.newChoices,
                    schema: schema,
                    maximumChoices: maximumChoices,
                    context: context
                )
            }
            var results: [[UInt8]] = []
            var created: [String] = []
            var updated: [String] = []
            for (index, operation) in write.operations.enumerated() {
                do {
                    switch operation {
                    case .create(let fields):
                        let record = try Self.insertRecord(db, fields: fields, schema: schema, context: context)
                        results.append(record.json)
                        created.append(record.id.rawValue)
                    case .update(let id, let fields, let replace):
                        let record = try Self.updateRecordRow(
                            db,
                            id: id,
                            fields: fields,
                            replace: replace,
                            ifVersion: nil,
                            schema: schema,
                            context: context
                        )
                        results.append(record.json)
                        updated.append(id.rawValue)
                    case .upsert(let fields, let replace):
                        if let id = try Self.upsertMatch(db, fields: fields, mergeOn: write.mergeOn, schema: schema) {
                            let record = try Self.updateRecordRow(
                                db,
                                id: id,
                                fields: fields,
                                replace: replace,
                                ifVersion: nil,
                                schema: schema,
                                context: context
                            )
                            results.append(record.json)
                            updated.append(id.rawValue)
                        } else {
                            let record = try Self.insertRecord(db, fields: fields, schema: schema, context: context)
                            results.append(record.json)
                            created.append(record.id.rawValue)
                        }
                    case .delete(let id):
                        try Self.deleteRecordRow(db, id: id, ifVersion: nil, schema: schema, context: context)
                        results.append(Array(#"{"deleted":true,"id":"\#(id.rawValue)"}"#.utf8))
                    }
                } catch let error as StorageError {
                    throw StorageError.inOperation(index, error)
                }
            }
            var output: [UInt8] = Array(#"{"created":["#.utf8)
            output += created.map { #""\#($0)""# }.joined(separator: ",").utf8
            output += Array(#"],"results":["#.utf8)
            for (index, result) in results.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                output += result
            }
            output += Array(#"],"updated":["#.utf8)
            output += updated.map { #""\#($0)""# }.joined(separator: ",").utf8
            output += Array("]}".utf8)
            return EncodedJSON(json: output)
        }
    }

    /// Adds choices to select fields (in the write's transaction), appending a `field.updated` event
    /// for each field that changed; answers the schema the records are then written against.
    private static func addChoices(
        _ db: Database,
        _ newChoices: [FieldID: [String]],
        schema: TableSchema,
        maximumChoices: Int,
        context: WriteContext
    ) throws -> TableSchema {
        var table = schema.table
        var changed = false
        for (fieldID, names) in newChoices.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            guard let index = table.fields.firstIndex(where: { $0.id == fieldID }) else { continue }
            var field = table.fields[index]
            guard field.type == .singleSelect || field.type == .multipleSelects else { continue }
            var options = field.options ?? FieldOptions()
            var choices = options.choices ?? []
            var known = Set(choices.map(\.name))
            for name in names where !name.isEmpty && known.insert(name).inserted {
                choices.append(SelectChoice(name: name))
            }
            guard choices.count != (options.choices ?? []).count else { continue }
            guard choices.count <= maximumChoices else {
                throw StorageError.invalid(
                    "field '\(field.name)' would have \(choices.count) choices, over the limit of \(maximumChoices) "
                        + "(maximumSelectChoices)",
                    field: field.name
                )
            }
            options.choices = choices
            try SchemaValidation.options(options, type: field.type, name: field.name)
            field.options = options
            field.version += 1
            field.updatedAt = context.now
            let encoded = String(decoding: try JSONCoding.encoder.encode(options), as: UTF8.self)
            try db.execute(
                sql: "UPDATE fields SET options = ?, version = ?, updated_at = ? WHERE id = ?",
                arguments: [encoded, field.version, context.now.millisecondsSince1970, field.id.rawValue]
            )
            try appendEvent(
                db,
                type: .fieldUpdated,
                workspaceID: schema.workspaceID,
                baseID: table.baseID,
                tableID: table.id,
                payload: field,
                context: context
            )
            table.fields[index] = field
            changed = true
        }
        guard changed else { return schema }
        try touchTable(db, id: table.id, context: context)
        return TableSchema(table: table, workspaceID: schema.workspaceID)
    }

    /// The record an upsert updates: the one whose merge fields all equal the written values; `nil`
    /// (create) when none does or a merge value is blank, as on Airtable; 422 when several do.
    private static func upsertMatch(
        _ db: Database,
        fields: [String: FieldValue],
        mergeOn: [FieldID],
        schema: TableSchema
    ) throws -> RecordID? {
        var clauses = ["table_id = ?"]
        var arguments: [DatabaseValue] = [schema.table.id.rawValue.databaseValue]
        for fieldID in mergeOn {
            guard let field = schema.fieldsByID[fieldID.rawValue] else {
                throw StorageError.invalid("unknown field '\(fieldID)' in fieldsToMergeOn", field: fieldID.rawValue)
            }
            guard let written = fields[field.name], !written.isBlank,
                let value = try FieldValueValidator.normalize(written, for: field)
            else { return nil }
            let path = "json_extract(fields, '\(jsonPath(field.id))')"
            switch value {
            case .string(let text):
                clauses.append("\(path) = ?")
                arguments.append(text.databaseValue)
            case .number(let number):
                clauses.append("\(path) = ?")
                arguments.append(number.databaseValue)
            case .bool(let bool):
                clauses.append(bool ? "\(path) = 1" : "\(path) IS NULL")
            case .strings(let strings):
                clauses.append("\(path) = json(?)")
                arguments.append(String(decoding: try JSONCoding.encoder.encode(strings), as: UTF8.self).databaseValue)
            case .attachments, .null:
                throw StorageError.invalid(
                    "field '\(field.name)' (\(field.type.rawValue)) cannot be a field to merge on",
                    field: field.name
                )
            }
        }
        let ids = try String.fetchAll(
            db,
            sql: "SELECT id FROM records WHERE \(clauses.joined(separator: " AND ")) ORDER BY seq LIMIT 2",
            arguments: StatementArguments(arguments)
        )
        guard ids.count < 2 else {
            throw StorageError.invalid(
                "more than one record matches the fields to merge on (\(ids.joined(separator: ", ")))",
                field: nil
            )
        }
        return ids.first.map { RecordID(unchecked: $0) }
    }
}
