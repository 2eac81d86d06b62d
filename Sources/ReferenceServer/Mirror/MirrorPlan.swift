import Crypto
import Foundation
import PyAirtableModels

/// What a mirrored base holds in the store now: what a full sync's changes are computed against.
struct MirrorCurrentState: Sendable {
    /// Counts the snapshots applied; an apply names the one it was computed from, and is refused
    /// when another came between (two instances, or two syncs, racing).
    var generation: Int64 = 0
    var workspaceID: WorkspaceID?
    var base: Base?
    var tables: [PyAirtableModels.Table] = []
    var records: [TableID: [String: MirrorStoredRecord]] = [:]
}

/// A record row as stored.
struct MirrorStoredRecord: Sendable {
    var fields: String
    var version: Int
    var createdAt: Int64
}

/// One step of applying a snapshot; a store runs them in order, in one transaction.
enum MirrorOperation: Sendable {
    case insertWorkspace(id: WorkspaceID, name: String, owner: UserID, at: Int64)
    case upsertBase(id: BaseID, workspace: WorkspaceID, name: String, version: Int, createdAt: Int64, updatedAt: Int64)
    case upsertTable(
        id: TableID,
        base: BaseID,
        name: String,
        description: String?,
        primaryField: FieldID,
        version: Int,
        createdAt: Int64,
        updatedAt: Int64
    )
    case deleteTable(TableID)
    case upsertField(
        id: FieldID,
        table: TableID,
        name: String,
        type: String,
        options: String?,
        description: String?,
        position: Int,
        version: Int,
        createdAt: Int64,
        updatedAt: Int64
    )
    case deleteField(FieldID)
    case upsertView(
        id: ViewID,
        table: TableID,
        name: String,
        type: String,
        position: Int,
        version: Int,
        createdAt: Int64,
        updatedAt: Int64
    )
    case deleteView(ViewID)
    case insertRecord(id: RecordID, table: TableID, fields: String, createdAt: Int64, updatedAt: Int64)
    case updateRecord(id: RecordID, fields: String, version: Int, updatedAt: Int64)
    case deleteRecord(RecordID)
    case event(MirrorEvent)
}

/// An event of an apply, its payload already encoded.
struct MirrorEvent: Sendable {
    var type: EventType
    var workspaceID: WorkspaceID
    var baseID: BaseID?
    var tableID: TableID?
    var recordID: RecordID?
    var payload: RawJSON
}

/// JSON bytes taken as they are.
struct RawJSON: PreEncodedJSON {
    var json: [UInt8]
}

/// A table's records as a count and an order-independent digest of their ids and cells (cells of
/// fields outside the table's schema left out), computed the same way from what the upstream sent
/// and from what the store holds after the apply: they must agree before the snapshot serves.
struct MirrorDigest: Sendable, Equatable, CustomStringConvertible {
    var count = 0
    var sum: UInt64 = 0

    mutating func add(id: String, canonicalFields: String) {
        var hasher = SHA256()
        hasher.update(data: Array(id.utf8))
        hasher.update(data: [0])
        hasher.update(data: Array(canonicalFields.utf8))
        let digest = hasher.finalize()
        var value: UInt64 = 0
        for byte in digest.prefix(8) { value = value << 8 | UInt64(byte) }
        sum &+= value
        count += 1
    }

    mutating func add(_ other: MirrorDigest) {
        sum &+= other.sum
        count += other.count
    }

    /// Adds a stored row, keeping only the cells of `fieldIDs`.
    mutating func add(id: String, storedFields: String, fieldIDs: Set<String>) {
        add(id: id, canonicalFields: Self.canonical(storedFields, fieldIDs: fieldIDs))
    }

    static func canonical(_ storedFields: String, fieldIDs: Set<String>) -> String {
        RecordJSON.storedObject(RecordJSON.members(of: storedFields).filter { fieldIDs.contains($0.key) })
    }

    var description: String { String(format: "%016llx", sum) + "-\(count)" }
}

/// The store's side of an apply: the operations, what to check afterwards, and the state to record.
struct MirrorChangeSet: Sendable {
    var baseID: BaseID
    var upstream: String
    var syncID: String
    var expectedGeneration: Int64
    var operations: [MirrorOperation]
    /// Every table of the new snapshot, with its field ids and the digest its records must have.
    var expected: [(table: TableID, fieldIDs: Set<String>, digest: MirrorDigest)]
    var summary: MirrorSnapshotSummary
    var workspaceID: WorkspaceID
}

/// What applying a snapshot changed.
struct MirrorApplyCounts: Sendable, Equatable {
    var created = 0
    var updated = 0
    var deleted = 0
}

/// Why a sync's data cannot become a snapshot.
struct MirrorSnapshotError: Error, CustomStringConvertible {
    var description: String
}

/// Turns an upstream's schema and pages into the operations that make the store hold exactly them.
struct MirrorPlanner {
    var baseID: BaseID
    var baseName: String
    var upstream: String
    var syncID: String
    var owner: UserID
    var now: Date
    var maximumRecords: Int
    var maximumAnswerDepth: Int

    /// The field types a mirror stores (the rest are skipped, and said so in the status).
    static func mirrors(_ type: FieldType) -> Bool {
        type.isKnown && type != .multipleAttachments
    }

    /// The upstream's tables in their order, with the fields this mirror keeps.
    struct UpstreamTable {
        var table: PyAirtableModels.Table
        var skipped: [MirrorSkippedField]
    }

    func tables(fromSchema bytes: [UInt8]) throws -> [UpstreamTable] {
        guard let schema = JSONValue.parse(bytes, maximumDepth: maximumAnswerDepth),
            case .array(let tables)? = schema["tables"]
        else { throw MirrorSnapshotError(description: "the upstream's schema of \(baseID) is not Airtable's") }
        var result: [UpstreamTable] = []
        var tableIDs = Set<String>()
        for entry in tables {
            guard let id = entry["id"]?.stringValue.flatMap(TableID.init), let name = entry["name"]?.stringValue,
                let primary = entry["primaryFieldId"]?.stringValue.flatMap(FieldID.init),
                case .array(let fieldEntries)? = entry["fields"], tableIDs.insert(id.rawValue).inserted
            else {
                throw MirrorSnapshotError(description: "a table of the upstream's schema of \(baseID) is malformed")
            }
            var fields: [Field] = []
            var skipped: [MirrorSkippedField] = []
            var fieldNames = Set<String>()
            for fieldEntry in fieldEntries {
                guard let fieldID = fieldEntry["id"]?.stringValue.flatMap(FieldID.init),
                    let fieldName = fieldEntry["name"]?.stringValue, let type = fieldEntry["type"]?.stringValue,
                    fieldNames.insert(fieldName).inserted
                else {
                    throw MirrorSnapshotError(description: "a field of table \(id) upstream is malformed")
                }
                let fieldType = FieldType(rawValue: type)
                guard Self.mirrors(fieldType) else {
                    skipped.append(MirrorSkippedField(tableID: id, fieldID: fieldID, name: fieldName, type: type))
                    continue
                }
                fields.append(
                    Field(
                        id: fieldID,
                        tableID: id,
                        name: fieldName,
                        type: fieldType,
                        options: Self.options(fieldEntry["options"], type: fieldType),
                        description: fieldEntry["description"]?.stringValue,
                        createdAt: now,
                        updatedAt: now
                    )
                )
            }
            guard fields.contains(where: { $0.id == primary }) else {
                throw MirrorSnapshotError(
                    description: "the primary field of table \(id) upstream has a type this mirror does not store yet"
                )
            }
            var views: [View] = []
            if case .array(let viewEntries)? = entry["views"] {
                var viewNames = Set<String>()
                for viewEntry in viewEntries {
                    guard let viewID = viewEntry["id"]?.stringValue.flatMap(ViewID.init),
                        let viewName = viewEntry["name"]?.stringValue, viewNames.insert(viewName).inserted
                    else { continue }
                    views.append(
                        View(
                            id: viewID,
                            tableID: id,
                            name: viewName,
                            type: viewEntry["type"]?.stringValue ?? "grid",
                            createdAt: now,
                            updatedAt: now
                        )
                    )
                }
            }
            result.append(
                UpstreamTable(
                    table: PyAirtableModels.Table(
                        id: id,
                        baseID: baseID,
                        name: name,
                        description: entry["description"]?.stringValue,
                        primaryFieldID: primary,
                        fields: fields,
                        views: views,
                        createdAt: now,
                        updatedAt: now
                    ),
                    skipped: skipped
                )
            )
        }
        return result
    }

    private static func options(_ value: JSONValue?, type: FieldType) -> FieldOptions? {
        switch type {
        case .number:
            return FieldOptions(precision: value?["precision"]?.numberValue.map { Int($0) })
        case .singleSelect, .multipleSelects:
            guard case .array(let choices)? = value?["choices"] else { return FieldOptions(choices: []) }
            return FieldOptions(
                choices: choices.compactMap { choice in
                    choice["name"]?.stringValue.map { SelectChoice(name: $0, color: choice["color"]?.stringValue) }
                }
            )
        case .multipleRecordLinks:
            return FieldOptions(linkedTableID: value?["linkedTableId"]?.stringValue.flatMap(TableID.init))
        default:
            return nil
        }
    }

    /// A record as the upstream sent it, in stored form.
    struct TargetRecord {
        var fields: String
        var createdAt: Int64
    }

    /// A table's records from its pages: stored cells keyed by field id, validated as any write's.
    func records(of table: PyAirtableModels.Table, pages: [[UInt8]]) throws -> [String: TargetRecord] {
        let schema = TableSchema(table: table, workspaceID: WorkspaceID(unchecked: "wsp"))
        var result: [String: TargetRecord] = [:]
        for page in pages {
            guard case .array(let entries)? = JSONValue.parse(page, maximumDepth: maximumAnswerDepth) else {
                throw MirrorSnapshotError(description: "a kept page of table \(table.id) is unreadable")
            }
            for entry in entries {
                guard let id = entry["id"]?.stringValue, RecordID.isValid(id) else {
                    throw MirrorSnapshotError(description: "a record of table \(table.id) upstream has no valid id")
                }
                var members: [String: [UInt8]] = [:]
                if case .object(let cells)? = entry["fields"] {
                    for (key, cell) in cells {
                        guard let field = schema.fieldsByID[key] else { continue }
                        let value = try Self.fieldValue(cell, field: field, record: id)
                        do {
                            if let normalized = try FieldValueValidator.normalize(value, for: field) {
                                members[key] = try RecordJSON.cell(normalized)
                            }
                        } catch {
                            throw MirrorSnapshotError(
                                description: "record \(id) of table \(table.id) upstream: \(error)"
                            )
                        }
                    }
                }
                let created =
                    entry["createdTime"]?.stringValue.flatMap(Timestamp.parse)?.millisecondsSince1970
                    ?? now.millisecondsSince1970
                guard
                    result.updateValue(
                        TargetRecord(fields: RecordJSON.storedObject(members), createdAt: created),
                        forKey: id
                    )
                        == nil
                else {
                    throw MirrorSnapshotError(
                        description: "the upstream listed record \(id) twice in table \(table.id)"
                    )
                }
                guard result.count <= maximumRecords else {
                    throw MirrorSnapshotError(
                        description: "table \(table.id) upstream has more than \(maximumRecords) records"
                    )
                }
            }
        }
        return result
    }

    /// A v0 cell as the value a write of this field takes.
    static func fieldValue(_ cell: JSONValue, field: Field, record: String) throws -> FieldValue {
        func mismatch() -> MirrorSnapshotError {
            MirrorSnapshotError(
                description:
                    "record \(record) upstream: field '\(field.name)' (\(field.type)) holds an unexpected value"
            )
        }
        switch (field.type, cell) {
        case (_, .null): return .null
        case (.number, .number(let number)): return .number(number)
        case (.checkbox, .bool(let flag)): return .bool(flag)
        case (.multipleSelects, .array(let items)), (.multipleRecordLinks, .array(let items)):
            var strings: [String] = []
            for item in items {
                switch item {
                case .string(let string): strings.append(string)
                case .object(let object):
                    // A link given as `{"id": …}` (some cell formats).
                    guard let id = object["id"]?.stringValue else { throw mismatch() }
                    strings.append(id)
                default: throw mismatch()
                }
            }
            return .strings(strings)
        case (_, .string(let text)) where field.type.isText: return .string(text)
        default: throw mismatch()
        }
    }

    // MARK: The change set

    /// The operations that turn `current` into the upstream's snapshot, with what to verify.
    func changeSet(
        current: MirrorCurrentState,
        tables: [UpstreamTable],
        records: [TableID: [String: TargetRecord]]
    ) throws -> (MirrorChangeSet, MirrorApplyCounts) {
        let at = now.millisecondsSince1970
        var operations: [MirrorOperation] = []
        var counts = MirrorApplyCounts()
        let workspaceID = current.workspaceID ?? WorkspaceID.generate()
        func event(_ type: EventType, table: TableID? = nil, record: RecordID? = nil, _ payload: any Encodable) throws {
            operations.append(try makeEvent(type, workspace: workspaceID, table: table, record: record, payload))
        }
        if current.workspaceID == nil {
            let name = "Mirror of \(baseName)"
            operations.append(.insertWorkspace(id: workspaceID, name: name, owner: owner, at: at))
            let workspace = Workspace(id: workspaceID, name: name, role: .owner, createdAt: now, updatedAt: now)
            operations.append(
                .event(
                    MirrorEvent(
                        type: .workspaceCreated,
                        workspaceID: workspaceID,
                        payload: RawJSON(json: Array(try JSONCoding.encoder.encode(workspace)))
                    )
                )
            )
        }
        if let base = current.base {
            if base.name != baseName {
                let updated = Base(
                    id: baseID,
                    workspaceID: workspaceID,
                    name: baseName,
                    version: base.version + 1,
                    createdAt: base.createdAt,
                    updatedAt: now
                )
                operations.append(
                    .upsertBase(
                        id: baseID,
                        workspace: workspaceID,
                        name: baseName,
                        version: updated.version,
                        createdAt: base.createdAt.millisecondsSince1970,
                        updatedAt: at
                    )
                )
                try event(.baseUpdated, updated)
            }
        } else {
            let base = Base(id: baseID, workspaceID: workspaceID, name: baseName, createdAt: now, updatedAt: now)
            operations.append(
                .upsertBase(
                    id: baseID,
                    workspace: workspaceID,
                    name: baseName,
                    version: 1,
                    createdAt: at,
                    updatedAt: at
                )
            )
            try event(.baseCreated, base)
        }
        let currentTables = Dictionary(uniqueKeysWithValues: current.tables.map { ($0.id, $0) })
        let targetIDs = Set(tables.map(\.table.id))
        for table in current.tables where !targetIDs.contains(table.id) {
            operations.append(.deleteTable(table.id))
            try event(.tableDeleted, table: table.id, ["id": table.id.rawValue])
        }
        var expected: [(table: TableID, fieldIDs: Set<String>, digest: MirrorDigest)] = []
        var total = MirrorDigest()
        for upstreamTable in tables {
            let target = upstreamTable.table
            var table = target
            let existing = currentTables[target.id]
            if let existing {
                table = try tableChanges(from: existing, to: target, workspace: workspaceID, operations: &operations)
            } else {
                operations.append(upsertTable(table, version: 1, createdAt: at, updatedAt: at))
                for (position, field) in table.fields.enumerated() {
                    operations.append(try Self.upsert(field, position: position))
                }
                for (position, view) in table.views.enumerated() {
                    operations.append(Self.upsert(view, position: position))
                }
                try event(.tableCreated, table: table.id, table)
            }
            let schema = TableSchema(table: table, workspaceID: workspaceID)
            let fieldIDs = Set(table.fields.map(\.id.rawValue))
            let targetRecords = records[table.id] ?? [:]
            let stored = current.records[table.id] ?? [:]
            var digest = MirrorDigest()
            for (id, record) in targetRecords.sorted(by: { $0.key < $1.key }) {
                digest.add(id: id, canonicalFields: record.fields)
                let recordID = RecordID(unchecked: id)
                if let row = stored[id] {
                    guard MirrorDigest.canonical(row.fields, fieldIDs: fieldIDs) != record.fields else { continue }
                    operations.append(
                        .updateRecord(id: recordID, fields: record.fields, version: row.version + 1, updatedAt: at)
                    )
                    let json = SQLiteStore.encodeRecord(
                        id: recordID,
                        storedFields: record.fields,
                        version: row.version + 1,
                        createdAt: row.createdAt,
                        updatedAt: at,
                        schema: schema
                    )
                    try event(.recordUpdated, table: table.id, record: recordID, json)
                    counts.updated += 1
                } else {
                    operations.append(
                        .insertRecord(
                            id: recordID,
                            table: table.id,
                            fields: record.fields,
                            createdAt: record.createdAt,
                            updatedAt: at
                        )
                    )
                    let json = SQLiteStore.encodeRecord(
                        id: recordID,
                        storedFields: record.fields,
                        version: 1,
                        createdAt: record.createdAt,
                        updatedAt: at,
                        schema: schema
                    )
                    try event(.recordCreated, table: table.id, record: recordID, json)
                    counts.created += 1
                }
            }
            if existing != nil {
                for id in stored.keys.sorted() where targetRecords[id] == nil {
                    let recordID = RecordID(unchecked: id)
                    operations.append(.deleteRecord(recordID))
                    try event(.recordDeleted, table: table.id, record: recordID, DeletedRecord(id: recordID))
                    counts.deleted += 1
                }
            }
            expected.append((table.id, fieldIDs, digest))
            total.add(digest)
        }
        let summary = MirrorSnapshotSummary(
            syncID: syncID,
            completedAt: now,
            tables: tables.count,
            records: total.count,
            digest: total.description
        )
        return (
            MirrorChangeSet(
                baseID: baseID,
                upstream: upstream,
                syncID: syncID,
                expectedGeneration: current.generation,
                operations: operations,
                expected: expected,
                summary: summary,
                workspaceID: workspaceID
            ),
            counts
        )
    }

    /// The schema changes of one table that exists already; answers the table as it will be.
    private func tableChanges(
        from existing: PyAirtableModels.Table,
        to target: PyAirtableModels.Table,
        workspace: WorkspaceID,
        operations: inout [MirrorOperation]
    ) throws -> PyAirtableModels.Table {
        let at = now.millisecondsSince1970
        var events: [MirrorOperation] = []
        func event(_ type: EventType, _ table: TableID?, _ record: RecordID?, _ payload: any Encodable) throws {
            events.append(try makeEvent(type, workspace: workspace, table: table, record: record, payload))
        }
        var changed = false
        let existingFields = Dictionary(uniqueKeysWithValues: existing.fields.map { ($0.id, $0) })
        let targetFieldIDs = Set(target.fields.map(\.id))
        for field in existing.fields where !targetFieldIDs.contains(field.id) {
            operations.append(.deleteField(field.id))
            try event(.fieldDeleted, target.id, nil, ["id": field.id.rawValue])
            changed = true
        }
        // Names are unique in a table: a field taking the name another one leaves goes through a
        // name no field can have first.
        for field in target.fields {
            if let old = existingFields[field.id], old.name != field.name {
                var renamed = old
                renamed.name = "\u{1}" + field.id.rawValue
                operations.append(try Self.upsert(renamed, position: 0))
            }
        }
        var fields: [Field] = []
        for (position, field) in target.fields.enumerated() {
            var next = field
            if let old = existingFields[field.id] {
                next.createdAt = old.createdAt
                let same =
                    old.name == field.name && old.type == field.type && old.options == field.options
                    && old.description == field.description
                let oldPosition = existing.fields.firstIndex { $0.id == field.id }
                next.version = same ? old.version : old.version + 1
                next.updatedAt = same ? old.updatedAt : now
                if !same || oldPosition != position {
                    operations.append(try Self.upsert(next, position: position))
                    changed = true
                }
                if !same {
                    try event(.fieldUpdated, target.id, nil, next)
                    changed = true
                }
            } else {
                operations.append(try Self.upsert(next, position: position))
                try event(.fieldCreated, target.id, nil, next)
                changed = true
            }
            fields.append(next)
        }
        let existingViews = Dictionary(uniqueKeysWithValues: existing.views.map { ($0.id, $0) })
        let targetViewIDs = Set(target.views.map(\.id))
        for view in existing.views where !targetViewIDs.contains(view.id) {
            operations.append(.deleteView(view.id))
            try event(.viewDeleted, target.id, nil, ["id": view.id.rawValue])
            changed = true
        }
        for view in existing.views where targetViewIDs.contains(view.id) {
            if let next = target.views.first(where: { $0.id == view.id }), next.name != view.name {
                var renamed = view
                renamed.name = "\u{1}" + view.id.rawValue
                operations.append(Self.upsert(renamed, position: 0))
            }
        }
        var views: [View] = []
        for (position, view) in target.views.enumerated() {
            var next = view
            if let old = existingViews[view.id] {
                next = old
                let same = old.name == view.name && old.type == view.type
                if !same {
                    next.name = view.name
                    next.type = view.type
                    next.version = old.version + 1
                    next.updatedAt = now
                }
                let oldPosition = existing.views.firstIndex { $0.id == view.id }
                if !same || oldPosition != position {
                    operations.append(Self.upsert(next, position: position))
                    changed = true
                }
                if !same {
                    try event(.viewUpdated, target.id, nil, next)
                    changed = true
                }
            } else {
                operations.append(Self.upsert(next, position: position))
                try event(.viewCreated, target.id, nil, next)
                changed = true
            }
            views.append(next)
        }
        var table = target
        table.fields = fields
        table.views = views
        table.createdAt = existing.createdAt
        let attributesChanged =
            existing.name != target.name || existing.description != target.description
            || existing.primaryFieldID != target.primaryFieldID
        table.version = attributesChanged || changed ? existing.version + 1 : existing.version
        table.updatedAt = attributesChanged || changed ? now : existing.updatedAt
        if attributesChanged || changed {
            operations.append(
                upsertTable(
                    table,
                    version: table.version,
                    createdAt: existing.createdAt.millisecondsSince1970,
                    updatedAt: at
                )
            )
        }
        if attributesChanged { try event(.tableUpdated, target.id, nil, table) }
        operations.append(contentsOf: events)
        return table
    }

    private func makeEvent(
        _ type: EventType,
        workspace: WorkspaceID,
        table: TableID?,
        record: RecordID?,
        _ payload: any Encodable
    ) throws -> MirrorOperation {
        let json = try (payload as? any PreEncodedJSON).map(\.json) ?? Array(JSONCoding.encoder.encode(payload))
        return .event(
            MirrorEvent(
                type: type,
                workspaceID: workspace,
                baseID: baseID,
                tableID: table,
                recordID: record,
                payload: RawJSON(json: json)
            )
        )
    }

    private func upsertTable(
        _ table: PyAirtableModels.Table,
        version: Int,
        createdAt: Int64,
        updatedAt: Int64
    ) -> MirrorOperation {
        .upsertTable(
            id: table.id,
            base: baseID,
            name: table.name,
            description: table.description,
            primaryField: table.primaryFieldID,
            version: version,
            createdAt: createdAt,
            updatedAt: updatedAt
        )
    }

    private static func upsert(_ field: Field, position: Int) throws -> MirrorOperation {
        .upsertField(
            id: field.id,
            table: field.tableID,
            name: field.name,
            type: field.type.rawValue,
            options: try field.options.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) },
            description: field.description,
            position: position,
            version: field.version,
            createdAt: field.createdAt.millisecondsSince1970,
            updatedAt: field.updatedAt.millisecondsSince1970
        )
    }

    private static func upsert(_ view: View, position: Int) -> MirrorOperation {
        .upsertView(
            id: view.id,
            table: view.tableID,
            name: view.name,
            type: view.type,
            position: position,
            version: view.version,
            createdAt: view.createdAt.millisecondsSince1970,
            updatedAt: view.updatedAt.millisecondsSince1970
        )
    }
}
