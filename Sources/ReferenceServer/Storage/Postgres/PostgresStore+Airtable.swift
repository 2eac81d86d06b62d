import Foundation
import PostgresNIO
import PyAirtableModels

extension PostgresStore {
    /// Applies a v0 write in one transaction — all of it or none — with one event per record (and one
    /// per field whose choices grew), as ``SQLiteStore/airtableWrite(table:_:context:)`` does.
    public func airtableWrite(
        table: TableID,
        _ write: AirtableRecordWrite,
        context: WriteContext
    ) async throws -> WriteResult<EncodedJSON> {
        let actor = try context.requireActor()
        let maximumChoices = limits.maximumSelectChoices
        return try await perform(context) { transaction in
            var schema = try await self.requireCachedTable(transaction, id: table, user: actor, minimum: .editor)
            if !write.newChoices.isEmpty {
                // Choices grow under the table's lock, so two instances' typecasts both land.
                schema = try await Self.requireTable(transaction, id: table, user: actor, minimum: .editor, lock: true)
                schema = try await Self.addChoices(
                    transaction,
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
                        let record = try await Self.insertRecord(
                            transaction,
                            fields: fields,
                            schema: schema,
                            context: context
                        )
                        results.append(record.json)
                        created.append(record.id.rawValue)
                    case .update(let id, let fields, let replace):
                        let record = try await Self.updateRecordRow(
                            transaction,
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
                        if let id = try await Self.upsertMatch(
                            transaction,
                            fields: fields,
                            mergeOn: write.mergeOn,
                            schema: schema
                        ) {
                            let record = try await Self.updateRecordRow(
                                transaction,
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
                            let record = try await Self.insertRecord(
                                transaction,
                                fields: fields,
                                schema: schema,
                                context: context
                            )
                            results.append(record.json)
                            created.append(record.id.rawValue)
                        }
                    case .delete(let id):
                        try await Self.deleteRecordRow(
                            transaction,
                            id: id,
                            ifVersion: nil,
                            schema: schema,
                            context: context
                        )
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
        _ transaction: PostgresTransaction,
        _ newChoices: [FieldID: [String]],
        schema: TableSchema,
        maximumChoices: Int,
        context: WriteContext
    ) async throws -> TableSchema {
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
            try await transaction.execute(
                """
                UPDATE fields SET options = \(encoded), version = \(field.version),
                    updated_at = \(context.now.millisecondsSince1970)
                WHERE id = \(field.id.rawValue)
                """
            )
            try transaction.appendEvent(
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
        try await touchTable(transaction, id: table.id, context: context)
        return TableSchema(table: table, workspaceID: schema.workspaceID)
    }

    /// The record an upsert updates: the one whose merge fields all equal the written values; `nil`
    /// (create) when none does or a merge value is blank, as on Airtable; 422 when several do.
    /// Cells compare as JSON values (`jsonb` equality: `1` equals `1.0`, as SQLite's numbers do).
    private static func upsertMatch(
        _ transaction: PostgresTransaction,
        fields: [String: FieldValue],
        mergeOn: [FieldID],
        schema: TableSchema
    ) async throws -> RecordID? {
        var binds = PostgresBindings()
        binds.append(schema.table.id.rawValue)
        var clauses = ["table_id = $1"]
        for fieldID in mergeOn {
            guard let field = schema.fieldsByID[fieldID.rawValue], isSafeIdentifier(field.id.rawValue) else {
                throw StorageError.invalid("unknown field '\(fieldID)' in fieldsToMergeOn", field: fieldID.rawValue)
            }
            guard let written = fields[field.name], !written.isBlank,
                let value = try FieldValueValidator.normalize(written, for: field)
            else { return nil }
            let cell = "(fields::jsonb -> '\(field.id.rawValue)')"
            switch value {
            case .string, .number, .strings:
                binds.append(String(decoding: try RecordJSON.cell(value), as: UTF8.self))
                clauses.append("\(cell) = $\(binds.count)::jsonb")
            case .bool(let bool):
                clauses.append(bool ? "\(cell) = 'true'::jsonb" : "\(cell) IS NULL")
            case .attachments, .null:
                throw StorageError.invalid(
                    "field '\(field.name)' (\(field.type.rawValue)) cannot be a field to merge on",
                    field: field.name
                )
            }
        }
        let ids = try await transaction.rows(
            PostgresQuery(
                unsafeSQL: "SELECT id FROM records WHERE \(clauses.joined(separator: " AND ")) ORDER BY seq LIMIT 2",
                binds: binds
            )
        ).map { try $0.get("id", as: String.self) }
        guard ids.count < 2 else {
            throw StorageError.invalid(
                "more than one record matches the fields to merge on (\(ids.joined(separator: ", ")))",
                field: nil
            )
        }
        return ids.first.map { RecordID(unchecked: $0) }
    }
}
