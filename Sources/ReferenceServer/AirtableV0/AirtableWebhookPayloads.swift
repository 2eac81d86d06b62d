import Foundation
import GRDB
import PyAirtableModels

/// What an Airtable webhook's `specification.options` asks for.
struct AirtableWebhookSpecification {
    /// `filters.dataTypes`: `tableData` (records), `tableFields`, `tableMetadata`.
    var dataTypes: Set<String> = ["tableData"]
    /// `filters.recordChangeScope`: only this table's changes (`tbl…`).
    var scope: String?
    /// `filters.changeTypes`: `add`, `remove`, `update` (all when absent).
    var changeTypes: Set<String>?
    /// `filters.watchDataInFieldIds`: only record changes to these fields.
    var watchedFields: Set<String>?
    /// `includes.includePreviousCellValues`.
    var previousCellValues = false

    init(json: String) {
        guard let value = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(json.utf8)),
            case .object(let options)? = value["options"]
        else { return }
        let filters = options["filters"]
        if case .array(let types)? = filters?["dataTypes"] {
            dataTypes = Set(types.compactMap { if case .string(let text) = $0 { text } else { nil } })
        }
        if case .string(let scope)? = filters?["recordChangeScope"], scope.hasPrefix("tbl") { self.scope = scope }
        if case .array(let types)? = filters?["changeTypes"] {
            changeTypes = Set(types.compactMap { if case .string(let text) = $0 { text } else { nil } })
        }
        if case .array(let fields)? = filters?["watchDataInFieldIds"] {
            watchedFields = Set(fields.compactMap { if case .string(let text) = $0 { text } else { nil } })
        }
        if case .bool(let flag)? = options["includes"]?["includePreviousCellValues"] { previousCellValues = flag }
    }

    func wants(_ change: String) -> Bool { changeTypes?.contains(change) ?? true }

    /// Checks a specification a client sent, member by member as the contract declares it: an object
    /// with `options.filters.dataTypes` (a list of the known types); when present, `recordChangeScope`
    /// a string, `changeTypes` a list of `add`, `remove` and `update`, `watchDataInFieldIds` a list
    /// of strings, `options.includes` an object whose `includePreviousCellValues` is a boolean.
    /// Answers why it is refused, or `nil`.
    static func refusal(of value: JSONValue?) -> String? {
        guard case .object? = value, case .object(let options)? = value?["options"] else {
            return "specification.options is required"
        }
        guard case .object(let filters)? = options["filters"] else {
            return "specification.options.filters must be an object"
        }
        let dataTypes = "specification.options.filters.dataTypes must list tableData, tableFields or tableMetadata"
        guard case .array(let types)? = filters["dataTypes"], !types.isEmpty,
            strings(types, in: ["tableData", "tableFields", "tableMetadata"])
        else { return dataTypes }
        if let scope = filters["recordChangeScope"] {
            guard case .string = scope else {
                return "specification.options.filters.recordChangeScope must be a string"
            }
        }
        if let changeTypes = filters["changeTypes"] {
            guard case .array(let changes) = changeTypes, strings(changes, in: ["add", "remove", "update"]) else {
                return "specification.options.filters.changeTypes must list add, remove or update"
            }
        }
        if let watched = filters["watchDataInFieldIds"] {
            guard case .array(let ids) = watched, strings(ids, in: nil) else {
                return "specification.options.filters.watchDataInFieldIds must be a list of field ids"
            }
        }
        if let includes = options["includes"] {
            guard case .object(let members) = includes else {
                return "specification.options.includes must be an object"
            }
            if let previous = members["includePreviousCellValues"] {
                guard case .bool = previous else {
                    return "specification.options.includes.includePreviousCellValues must be true or false"
                }
            }
        }
        return nil
    }

    /// Whether every element is a string (of `allowed`, when given).
    private static func strings(_ values: [JSONValue], in allowed: Set<String>?) -> Bool {
        values.allSatisfy { value in
            guard case .string(let text) = value else { return false }
            return allowed?.contains(text) ?? true
        }
    }
}

/// What building a payload reads besides the write's events, behind a protocol so that each store
/// answers it its own way: SQLite with queries on the transaction building the payloads, PostgreSQL
/// from what it read ahead (its reads are asynchronous; the builder is not).
protocol AirtablePayloadLookups {
    /// The table's current schema (`nil` once the table is gone).
    func schema(table: String) throws -> TableSchema?
    /// The payload of the record's last `record.created` or `record.updated` event before `seq`.
    func previousRecordPayload(record: String, before seq: Int64) throws -> String?
    /// The payload of the table's last `table.created` or `table.updated` event before `seq`.
    func previousTablePayload(table: String, before seq: Int64) throws -> String?
    /// The user's email and role in `workspace` (`nil`: not a member); `nil` when there is no such user.
    func actor(_ user: String, workspace: String) throws -> (email: String, role: Role?)?
}

/// The lookups on SQLite: queries on the transaction that builds the payloads.
struct SQLitePayloadLookups: AirtablePayloadLookups {
    let store: SQLiteStore
    let db: Database

    func schema(table: String) throws -> TableSchema? {
        try store.cachedSchema(db, table: TableID(unchecked: table))
    }

    func previousRecordPayload(record: String, before seq: Int64) throws -> String? {
        try String.fetchOne(
            db,
            sql: """
                SELECT payload FROM events WHERE record_id = ? AND seq < ?
                    AND type IN ('record.created', 'record.updated') ORDER BY seq DESC LIMIT 1
                """,
            arguments: [record, seq]
        )
    }

    func previousTablePayload(table: String, before seq: Int64) throws -> String? {
        try String.fetchOne(
            db,
            sql: """
                SELECT payload FROM events WHERE table_id = ? AND seq < ?
                    AND type IN ('table.created', 'table.updated') ORDER BY seq DESC LIMIT 1
                """,
            arguments: [table, seq]
        )
    }

    func actor(_ user: String, workspace: String) throws -> (email: String, role: Role?)? {
        guard
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT u.email, m.role FROM users u
                    LEFT JOIN members m ON m.user_id = u.id AND m.workspace_id = ? WHERE u.id = ?
                    """,
                arguments: [workspace, user]
            )
        else { return nil }
        return (row["email"], (row["role"] as String?).flatMap(Role.init(rawValue:)))
    }
}

/// Builds Airtable's webhook payload for one write's events.
enum AirtablePayloadBuilder {
    /// The payload JSON, or `nil` when nothing in the events is what the webhook asks for.
    static func payload(
        of events: [AirtableEventRow],
        hook: AirtableWebhookRow,
        specification: AirtableWebhookSpecification,
        number: Int64,
        store: SQLiteStore,
        db: Database
    ) throws -> String? {
        try payload(
            of: events,
            hook: hook,
            specification: specification,
            number: number,
            lookups: SQLitePayloadLookups(store: store, db: db)
        )
    }

    /// The payload JSON, or `nil` when nothing in the events is what the webhook asks for, with what
    /// it reads besides the events read through `lookups`.
    static func payload(
        of events: [AirtableEventRow],
        hook: AirtableWebhookRow,
        specification: AirtableWebhookSpecification,
        number: Int64,
        lookups: some AirtablePayloadLookups
    ) throws -> String? {
        var changedTables: [String: JSONValue] = [:]
        var createdTables: [String: JSONValue] = [:]
        var destroyedTables: [String] = []
        func table(_ id: String, _ update: (inout [String: JSONValue]) -> Void) {
            var entry: [String: JSONValue] = {
                if case .object(let object)? = changedTables[id] { return object }
                return [:]
            }()
            update(&entry)
            changedTables[id] = .object(entry)
        }
        let records = specification.dataTypes.contains("tableData")
        let fields = specification.dataTypes.contains("tableFields")
        let metadata = specification.dataTypes.contains("tableMetadata")
        var schemas: [String: TableSchema?] = [:]
        func schema(_ id: String) throws -> TableSchema? {
            if let cached = schemas[id] { return cached }
            let loaded = try lookups.schema(table: id)
            schemas[id] = loaded
            return loaded
        }
        for event in events {
            guard let tableID = event.tableID else { continue }
            if let scope = specification.scope, scope != tableID { continue }
            let body = (try? JSONCoding.decoder.decode(JSONValue.self, from: Data(event.payload.utf8))) ?? .null
            switch event.type {
            case .recordCreated where records && specification.wants("add"):
                guard let id = event.recordID else { continue }
                let cells = try cellsByFieldID(body["fields"], schema: schema(tableID))
                if let watched = specification.watchedFields, watched.isDisjoint(with: cells.keys) { continue }
                table(tableID) { entry in
                    var created = entry["createdRecordsById"]?.objectValue ?? [:]
                    created[id] = .object([
                        "createdTime": body["created_at"]
                            ?? .string(Timestamp.format(Date(millisecondsSince1970: event.ts))),
                        "cellValuesByFieldId": .object(cells),
                    ])
                    entry["createdRecordsById"] = .object(created)
                }
            case .recordUpdated where records && specification.wants("update"):
                guard let id = event.recordID else { continue }
                let tableSchema = try schema(tableID)
                let current = try cellsByFieldID(body["fields"], schema: tableSchema, keepEmpty: true)
                var previous: [String: JSONValue]?
                if let earlier = try lookups.previousRecordPayload(record: id, before: event.seq),
                    let decoded = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(earlier.utf8))
                {
                    previous = try cellsByFieldID(decoded["fields"], schema: tableSchema, keepEmpty: true)
                }
                var changed: [String: JSONValue] = [:]
                var before: [String: JSONValue] = [:]
                for key in Set(current.keys).union(previous?.keys ?? [:].keys) {
                    let now = current[key] ?? .null
                    let then = previous?[key] ?? .null
                    if previous == nil || !sameCell(now, then) {
                        changed[key] = now
                        before[key] = then
                    }
                }
                if previous == nil { changed = current.filter { !isEmpty($0.value) } }
                // Watched fields decide whether a record's change is in the payload; once it is, its other
                // changes in the same write join it.
                let seen = changedTables[tableID]?["changedRecordsById"]?[id] != nil
                if !seen, let watched = specification.watchedFields, watched.isDisjoint(with: changed.keys) { continue }
                if changed.isEmpty { continue }
                table(tableID) { entry in
                    var updated = entry["changedRecordsById"]?.objectValue ?? [:]
                    // A record changed twice in one write: the later cells win, the earlier previous stays.
                    let earlier = updated[id]
                    var current = earlier?["current"]?["cellValuesByFieldId"]?.objectValue ?? [:]
                    current.merge(changed) { _, later in later }
                    var change: [String: JSONValue] = ["current": .object(["cellValuesByFieldId": .object(current)])]
                    if specification.previousCellValues, previous != nil {
                        var old = before
                        old.merge(earlier?["previous"]?["cellValuesByFieldId"]?.objectValue ?? [:]) { _, first in first
                        }
                        change["previous"] = .object(["cellValuesByFieldId": .object(old)])
                    }
                    updated[id] = .object(change)
                    entry["changedRecordsById"] = .object(updated)
                }
            case .recordDeleted where records && specification.wants("remove"):
                guard let id = event.recordID else { continue }
                table(tableID) { entry in
                    var destroyed = entry["destroyedRecordIds"]?.arrayValue ?? []
                    destroyed.append(.string(id))
                    entry["destroyedRecordIds"] = .array(destroyed)
                }
            case .fieldCreated where fields && specification.wants("add"):
                guard case .string(let id)? = body["id"] else { continue }
                table(tableID) { entry in
                    var created = entry["createdFieldsById"]?.objectValue ?? [:]
                    created[id] = .object(["name": body["name"] ?? .null, "type": body["type"] ?? .null])
                    entry["createdFieldsById"] = .object(created)
                }
            case .fieldUpdated where fields && specification.wants("update"):
                guard case .string(let id)? = body["id"] else { continue }
                table(tableID) { entry in
                    var changed = entry["changedFieldsById"]?.objectValue ?? [:]
                    changed[id] = .object([
                        "current": .object(["name": body["name"] ?? .null, "type": body["type"] ?? .null])
                    ])
                    entry["changedFieldsById"] = .object(changed)
                }
            case .fieldDeleted where fields && specification.wants("remove"):
                guard case .string(let id)? = body["id"] else { continue }
                table(tableID) { entry in
                    var destroyed = entry["destroyedFieldIds"]?.arrayValue ?? []
                    destroyed.append(.string(id))
                    entry["destroyedFieldIds"] = .array(destroyed)
                }
            case .tableCreated where (fields || metadata) && specification.wants("add"):
                var fieldsByID: [String: JSONValue] = [:]
                for field in body["fields"]?.arrayValue ?? [] {
                    guard case .string(let id)? = field["id"] else { continue }
                    fieldsByID[id] = .object(["name": field["name"] ?? .null, "type": field["type"] ?? .null])
                }
                createdTables[tableID] = .object([
                    "metadata": .object([
                        "name": body["name"] ?? .string(""), "description": body["description"] ?? .null,
                    ]),
                    "fieldsById": .object(fieldsByID),
                    "recordsById": .object([:]),
                ])
            case .tableUpdated where metadata && specification.wants("update"):
                var earlier: JSONValue = body
                if let text = try lookups.previousTablePayload(table: tableID, before: event.seq),
                    let decoded = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(text.utf8))
                {
                    earlier = decoded
                }
                guard body["name"] != earlier["name"] || body["description"] != earlier["description"] else { continue }
                table(tableID) { entry in
                    entry["changedMetadata"] = .object([
                        "current": .object([
                            "name": body["name"] ?? .string(""), "description": body["description"] ?? .null,
                        ]),
                        "previous": .object([
                            "name": earlier["name"] ?? .string(""), "description": earlier["description"] ?? .null,
                        ]),
                    ])
                }
            case .tableDeleted where (fields || metadata) && specification.wants("remove"):
                destroyedTables.append(tableID)
            default:
                continue
            }
        }
        guard !changedTables.isEmpty || !createdTables.isEmpty || !destroyedTables.isEmpty,
            let first = events.first, let last = events.last
        else { return nil }
        var source: [String: JSONValue] = [:]
        if let actor = last.actor, let user = try lookups.actor(actor, workspace: hook.workspaceID.rawValue) {
            let role = user.role
            source["user"] = .object([
                "id": .string(actor),
                "email": .string(user.email),
                "permissionLevel": .string(role.map(AirtableMetaController.permissionLevel(of:)) ?? "none"),
            ])
        }
        var payload: [String: JSONValue] = [
            "timestamp": .string(Timestamp.format(Date(millisecondsSince1970: last.ts))),
            "baseTransactionNumber": .number(Double(first.seq)),
            "payloadFormat": .string("v0"),
            "actionMetadata": .object(["source": .string("publicApi"), "sourceMetadata": .object(source)]),
        ]
        if !changedTables.isEmpty { payload["changedTablesById"] = .object(changedTables) }
        if !createdTables.isEmpty { payload["createdTablesById"] = .object(createdTables) }
        if !destroyedTables.isEmpty { payload["destroyedTableIds"] = .array(destroyedTables.map(JSONValue.string)) }
        return String(decoding: try AirtableJSON.encoder.encode(JSONValue.object(payload)), as: UTF8.self)
    }

    /// A record's cells (as `/api/v1` writes them, by name) by field id; empty ones left out unless
    /// `keepEmpty`. Cells of fields no longer in the table are left out.
    static func cellsByFieldID(
        _ fields: JSONValue?,
        schema: TableSchema?,
        keepEmpty: Bool = false
    ) throws
        -> [String: JSONValue]
    {
        guard case .object(let byName)? = fields, let schema else { return [:] }
        var cells: [String: JSONValue] = [:]
        for (name, value) in byName {
            guard let field = schema.fieldsByName[name] else { continue }
            if !keepEmpty && isEmpty(value) { continue }
            cells[field.id.rawValue] =
                field.type == .multipleAttachments ? AirtableCells.renameContentType(value) : value
        }
        return cells
    }

    static func isEmpty(_ value: JSONValue) -> Bool {
        switch value {
        case .null, .bool(false): true
        case .string(let text): text.isEmpty
        case .array(let items): items.isEmpty
        default: false
        }
    }

    /// Whether two cells hold the same value (an empty one is the same as none).
    static func sameCell(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if isEmpty(a) && isEmpty(b) { return true }
        return a == b
    }
}

extension JSONValue {
    var objectValue: [String: JSONValue]? {
        if case .object(let object) = self { return object }
        return nil
    }

    var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }
}
