import Crypto
import Foundation
import Hummingbird
import PyAirtableModels

/// Airtable's record routes under `/v0/{base}/{table}`: list (GET, and POST `listRecords` for long
/// formulas), get, create, update (PATCH merges, PUT replaces), upsert and delete, single and batch,
/// over the same store, ids and roles as `/api/v1`. A table is named by id or by name (percent-decoded
/// after the path is split), a field by name or id. Each write is one transaction with one event per
/// record, so realtime, webhooks and caches see v0 writes exactly like `/api/v1` writes.
struct AirtableRecordsController {
    let services: ServerServices
    let store: any RecordRepository & SchemaRepository
    var now: Date { services.configuration.now() }
    var limits: RequestLimits { services.configuration.limits }

    /// Airtable's limit on the records of one write.
    static let maximumBatch = 10
    /// Airtable's largest page.
    static let maximumPageSize = 100

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("{base}/{table}", use: list)
        group.post("{base}/{table}/listRecords", use: listByPost)
        group.post("{base}/{table}", use: create)
        group.patch("{base}/{table}", use: updateMany)
        group.put("{base}/{table}", use: replaceMany)
        group.delete("{base}/{table}", use: deleteMany)
        group.get("{base}/{table}/{record}", use: get)
        group.patch("{base}/{table}/{record}", use: updateOne)
        group.put("{base}/{table}/{record}", use: replaceOne)
        group.delete("{base}/{table}/{record}", use: deleteOne)
    }

    // MARK: Tables and fields

    /// The table the path names, by id or by name, in the base the path names; a base the caller cannot
    /// see is 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`, an unknown table 404 `TABLE_NOT_FOUND`.
    func schema(_ context: AppRequestContext, user: UserID) async throws -> TableSchema {
        let hidden = AirtableErrors.modelNotFound("no such base, or it is not shared with this token")
        guard let base = BaseID(context.parameters.get("base") ?? "") else { throw hidden }
        let raw = context.parameters.get("table") ?? ""
        let key = raw.removingPercentEncoding ?? raw
        if let id = TableID(key) {
            do {
                let schema = try await store.tableSchema(id: id, user: user)
                if schema.table.baseID == base { return schema }
            } catch let error as StorageError where error.isNotFoundOrForbidden {}
        }
        let tables: [PyAirtableModels.Table]
        do {
            tables = try await store.tables(base: base, user: user)
        } catch let error as StorageError where error.isNotFoundOrForbidden {
            throw hidden
        }
        guard let table = tables.first(where: { $0.name == key }) else {
            throw AirtableErrors.error(
                .notFound,
                "TABLE_NOT_FOUND",
                "Could not find table \(key) in base \(base.rawValue)"
            )
        }
        return try await store.tableSchema(id: table.id, user: user)
    }

    /// A field named by name or id.
    static func field(_ key: String, in schema: TableSchema) throws -> Field {
        guard let field = schema.fieldsByName[key] ?? schema.fieldsByID[key] else {
            throw AirtableErrors.error(.unprocessableContent, "UNKNOWN_FIELD_NAME", "Unknown field name: \"\(key)\"")
        }
        return field
    }

    // MARK: Reads

    /// What a records list asks for, from the query string or a `listRecords` body.
    struct ListOptions: Sendable {
        var pageSize: Int?
        var maxRecords: Int?
        var offset: String?
        var view: String?
        var fields: [String] = []
        var sort: [(field: String, direction: String?)] = []
        var formula: String?
        var cellFormat: String?
        var returnFieldsByFieldID = false
        var recordMetadata: [String] = []
        var timeZone: String?
        var attachments: AttachmentURLs?
    }

    /// Signed attachment URLs for an answer to `request`.
    private func attachmentURLs(_ request: Request) -> AttachmentURLs {
        AttachmentURLs(
            origin: AttachmentURLs.origin(for: request, configuration: services.configuration.airtable),
            keys: services.keys,
            now: now,
            lifetime: services.configuration.airtable.attachmentURLLifetime
        )
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let schema = try await schema(context, user: user)
        let query = AirtableQuery(request.uri.query.map { Substring($0) })
        var options = ListOptions()
        options.pageSize = try Self.integer(query.first("pageSize"), "pageSize")
        options.maxRecords = try Self.integer(query.first("maxRecords"), "maxRecords")
        options.offset = query.first("offset")
        options.view = query.first("view")
        options.fields = query.all("fields")
        options.sort = try query.sort(limit: limits.maximumSortKeys)
        options.formula = query.first("filterByFormula")
        options.cellFormat = query.first("cellFormat")
        options.returnFieldsByFieldID = Self.flag(query.first("returnFieldsByFieldId"))
        options.recordMetadata = query.all("recordMetadata")
        options.timeZone = query.first("timeZone")
        options.attachments = attachmentURLs(request)
        return try await answerList(options, schema: schema, user: user)
    }

    /// `POST …/listRecords`: the list options as a JSON body, for formulas too long for a URL;
    /// `timeZone` and `userLocale` stay in the query string, as on Airtable.
    @Sendable func listByPost(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let schema = try await schema(context, user: user)
        let query = AirtableQuery(request.uri.query.map { Substring($0) })
        let buffer = try await request.body.collect(upTo: .max)
        var body: [String: JSONValue] = [:]
        if buffer.readableBytes > 0 {
            guard
                case .object(let object) = try JSONCoding.decoder.decode(
                    JSONValue.self,
                    from: Data(buffer.readableBytesView)
                )
            else {
                throw AirtableErrors.error(.unprocessableContent, "INVALID_REQUEST_BODY", "the body must be an object")
            }
            body = object
        }
        var options = ListOptions()
        options.pageSize = try Self.integer(body["pageSize"], "pageSize")
        options.maxRecords = try Self.integer(body["maxRecords"], "maxRecords")
        options.offset = try Self.text(body["offset"], "offset")
        options.view = try Self.text(body["view"], "view")
        options.fields = try Self.texts(body["fields"], "fields")
        if let sort = body["sort"], sort != .null {
            guard case .array(let items) = sort else { throw AirtableErrors.invalidRequest("sort must be a list") }
            guard items.count <= limits.maximumSortKeys else {
                throw AirtableErrors.invalidRequest(
                    "sort has \(items.count) keys, over the limit of \(limits.maximumSortKeys) (maximumSortKeys)"
                )
            }
            options.sort = try items.map { item in
                guard case .string(let field)? = item["field"] else {
                    throw AirtableErrors.invalidRequest("each sort entry needs a field")
                }
                return (field, try Self.text(item["direction"], "direction"))
            }
        }
        options.formula = try Self.text(body["filterByFormula"], "filterByFormula")
        options.cellFormat = try Self.text(body["cellFormat"], "cellFormat")
        if case .bool(let flag)? = body["returnFieldsByFieldId"] { options.returnFieldsByFieldID = flag }
        options.recordMetadata = try Self.texts(body["recordMetadata"], "recordMetadata")
        options.timeZone = try query.first("timeZone") ?? Self.text(body["timeZone"], "timeZone")
        options.attachments = attachmentURLs(request)
        return try await answerList(options, schema: schema, user: user)
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let id = try Self.recordID(context.parameters.get("record"))
        let query = AirtableQuery(request.uri.query.map { Substring($0) })
        let encoded: EncodedRecord
        do {
            encoded = try await store.encodedRecord(id: id, user: user)
        } catch {
            // A record the caller cannot see, or none: the table and base decide the error first.
            _ = try await schema(context, user: user)
            throw AirtableErrors.recordError(error)
        }
        // The record's own schema (read with it, as current as it) when the path names its table by id
        // and its base: no second read. A table by name, or another table, goes the long way.
        let schema: TableSchema
        let rawTable = context.parameters.get("table") ?? ""
        if let known = encoded.schema, known.table.id.rawValue == rawTable,
            known.table.baseID.rawValue == context.parameters.get("base")
        {
            schema = known
        } else {
            schema = try await self.schema(context, user: user)
        }
        let cellFormat = query.first("cellFormat")
        let byFieldID = Self.flag(query.first("returnFieldsByFieldId"))
        if cellFormat == nil || cellFormat == "json" {
            guard
                let json = AirtableRecordJSON.record(
                    fromAPI: encoded.json,
                    schema: schema,
                    options: .init(byFieldID: byFieldID, attachments: attachmentURLs(request))
                )
            else { throw Self.recordNotFound(id.rawValue) }
            return AirtableJSON.response(bytes: json)
        }
        let stored = try JSONCoding.decoder.decode(AirtableCells.StoredRecordJSON.self, from: Data(encoded.json))
        guard stored.tableID == schema.table.id.rawValue else { throw Self.recordNotFound(id.rawValue) }
        var output = AirtableCells.Output()
        output.byFieldID = byFieldID
        output.strings = try await stringFormat(
            cellFormat,
            timeZone: query.first("timeZone"),
            records: [stored],
            schema: schema,
            user: user
        )
        output.strings?.attachments = attachmentURLs(request)
        return try AirtableJSON.response(AirtableCells.record(stored, schema: schema, output: output))
    }

    /// Runs a list: the view's filter and sort (hidden fields are still returned, as on Airtable), the
    /// formula, `sort` over the view's, `fields`, paging by `offset` and `maxRecords` across pages.
    private func answerList(_ options: ListOptions, schema: TableSchema, user: UserID) async throws -> Response {
        var filters: [Formula] = []
        var sort: [(field: Field, direction: SortSpec.Direction)] = []
        var viewID = ""
        if let key = options.view, !key.isEmpty {
            guard let view = schema.table.views.first(where: { $0.id.rawValue == key || $0.name == key }) else {
                throw AirtableErrors.error(
                    .unprocessableContent,
                    "VIEW_NAME_NOT_FOUND",
                    "View \"\(key)\" does not exist in table \(schema.table.name)"
                )
            }
            viewID = view.id.rawValue
            if let filter = view.filter, !filter.isEmpty {
                filters.append(try formula(filter, schema: schema, parameter: "view filter"))
            }
            sort = (view.sort ?? []).compactMap { spec in
                schema.fieldsByName[spec.field].map { ($0, spec.direction) }
            }
        }
        let formulaSource = options.formula ?? ""
        if !formulaSource.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            filters.append(try formula(formulaSource, schema: schema, parameter: "filterByFormula"))
        }
        if !options.sort.isEmpty {
            guard options.sort.count <= limits.maximumSortKeys else {
                throw AirtableErrors.invalidRequest(
                    "sort has \(options.sort.count) keys, over the limit of \(limits.maximumSortKeys) (maximumSortKeys)"
                )
            }
            sort = try options.sort.map { entry in
                let direction: SortSpec.Direction
                switch entry.direction?.lowercased() {
                case nil, "", "asc": direction = .asc
                case "desc": direction = .desc
                case let other?:
                    throw AirtableErrors.invalidRequest("sort direction \"\(other)\" is not asc or desc")
                }
                return (try Self.field(entry.field, in: schema), direction)
            }
        }
        let visible = options.fields.isEmpty ? nil : Set(try options.fields.map { try Self.field($0, in: schema).name })
        let pageSize = options.pageSize ?? Self.maximumPageSize
        guard (1...Self.maximumPageSize).contains(pageSize) else {
            throw AirtableErrors.invalidRequest("pageSize must be from 1 to \(Self.maximumPageSize), not \(pageSize)")
        }
        if let maxRecords = options.maxRecords, maxRecords < 1 {
            throw AirtableErrors.invalidRequest("maxRecords must be at least 1, not \(maxRecords)")
        }
        // An offset is "<records already returned>/<cursor>", so maxRecords holds across pages.
        var returned = 0
        var cursor: String?
        if let offset = options.offset, !offset.isEmpty {
            let parts = offset.split(separator: "/", maxSplits: 1)
            // The count is bounded, so adding a page to it cannot overflow.
            guard parts.count == 2, let count = Int(parts[0]), (0...1_000_000_000).contains(count),
                parts[1].utf8.count <= limits.maximumCursorLength
            else {
                throw AirtableErrors.error(.unprocessableContent, "INVALID_OFFSET_VALUE", "The offset is not valid")
            }
            returned = count
            cursor = String(parts[1])
        }
        var size = pageSize
        if let maxRecords = options.maxRecords {
            size = min(size, maxRecords - returned)
            if size < 1 { return try AirtableJSON.response(RecordPage(records: [], offset: nil)) }
        }
        var hasher = SHA256()
        for part in [
            schema.table.id.rawValue, viewID, formulaSource,
            SortSpec.format(sort.map { SortSpec(field: $0.field.name, direction: $0.direction) }),
        ] {
            hasher.update(data: Data(part.utf8))
            hasher.update(data: Data([0]))
        }
        let plan = RecordListPlan(
            filters: filters,
            sort: sort,
            visibleFields: visible,
            pageSize: size,
            cursor: cursor,
            queryHash: "v0" + Hex.encode(hasher.finalize().prefix(8))
        )
        let page: RecordListParts
        do {
            page = try await store.listRecordParts(schema: schema, plan: plan, user: user)
        } catch {
            throw AirtableErrors.recordError(error, valueType: "INVALID_OFFSET_VALUE")
        }
        let total = returned + page.records.count
        let more = page.nextCursor != nil && total < (options.maxRecords ?? .max)
        let offset = more ? page.nextCursor.map { "\(total)/\($0)" } : nil
        var commentCounts: [String: Int]?
        if options.recordMetadata.contains("commentCount") {
            var ids: [RecordID] = []
            for record in page.records {
                RecordJSON.forEachMember(of: Substring(decoding: record, as: UTF8.self).utf8) { key, value in
                    if key == "id", let id = RecordID(String(Substring(value).dropFirst().dropLast())) {
                        ids.append(id)
                    }
                }
            }
            let counts = try await services.store.commentCounts(records: ids, user: user)
            commentCounts = Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) })
        }
        if options.cellFormat == nil || options.cellFormat == "json" {
            // The common case, written from the records' bytes without decoding them.
            let recordOptions = AirtableRecordJSON.Options(
                byFieldID: options.returnFieldsByFieldID,
                commentCounts: commentCounts,
                attachments: options.attachments
            )
            var output: [UInt8] = []
            output.reserveCapacity(page.records.reduce(64) { $0 + $1.count + 1 })
            output.append(contentsOf: #"{"records":["#.utf8)
            var first = true
            for record in page.records {
                let text = Substring(decoding: record, as: UTF8.self)
                if !first { output.append(UInt8(ascii: ",")) }
                first = false
                guard AirtableRecordJSON.append(fromAPI: text.utf8, schema: schema, options: recordOptions, to: &output)
                else { throw ServerError(.internalServerError, .server, "a stored record could not be read") }
            }
            output.append(UInt8(ascii: "]"))
            if let offset {
                output.append(contentsOf: #","offset":"#.utf8)
                RecordJSON.appendString(offset, to: &output)
            }
            output.append(UInt8(ascii: "}"))
            return AirtableJSON.response(bytes: output)
        }
        let records = try page.records.map {
            try JSONCoding.decoder.decode(AirtableCells.StoredRecordJSON.self, from: Data($0))
        }
        var output = AirtableCells.Output()
        output.byFieldID = options.returnFieldsByFieldID
        output.commentCounts = commentCounts
        output.strings = try await stringFormat(
            options.cellFormat,
            timeZone: options.timeZone,
            records: records,
            schema: schema,
            user: user
        )
        output.strings?.attachments = options.attachments
        return try AirtableJSON.response(
            RecordPage(
                records: records.map { AirtableCells.record($0, schema: schema, output: output) },
                offset: offset
            )
        )
    }

    private func formula(_ source: String, schema: TableSchema, parameter: String) throws -> Formula {
        do {
            return try ViewValidation.parseFilter(source, schema: schema, parameter: parameter, limits: limits.formula)
        } catch {
            throw AirtableErrors.recordError(error, valueType: "INVALID_FILTER_BY_FORMULA")
        }
    }

    /// `cellFormat=string`'s settings (with the primary field values of the linked records on the
    /// page), `nil` for `json`.
    private func stringFormat(
        _ cellFormat: String?,
        timeZone: String?,
        records: [AirtableCells.StoredRecordJSON],
        schema: TableSchema,
        user: UserID
    ) async throws -> AirtableCells.StringFormat? {
        switch cellFormat {
        case nil, "", "json": return nil
        case "string": break
        case let other?: throw AirtableErrors.invalidRequest("cellFormat must be json or string, not \"\(other)\"")
        }
        var zone = TimeZone.gmt
        if let name = timeZone, !name.isEmpty, name.lowercased() != "utc" {
            guard let named = TimeZone(identifier: name) else {
                throw AirtableErrors.error(.unprocessableContent, "INVALID_TIME_ZONE", "Unknown time zone \"\(name)\"")
            }
            zone = named
        }
        var format = AirtableCells.StringFormat(timeZone: zone)
        format.linkedNames = try await linkedNames(records: records, schema: schema, user: user)
        return format
    }

    /// The primary field values of the records the page links to, by id, as `cellFormat=string` shows
    /// links; read 100 at a time through one `id IN (…)` query each.
    private func linkedNames(
        records: [AirtableCells.StoredRecordJSON],
        schema: TableSchema,
        user: UserID
    ) async throws -> [String: String] {
        var idsByTable: [TableID: Set<String>] = [:]
        for field in schema.table.fields where field.type == .multipleRecordLinks {
            guard let linked = field.options?.linkedTableID else { continue }
            for record in records {
                guard case .array(let items)? = record.fields[field.name] else { continue }
                for case .string(let id) in items where RecordID.isValid(id) {
                    idsByTable[linked, default: []].insert(id)
                }
            }
        }
        var names: [String: String] = [:]
        for (table, ids) in idsByTable {
            let linked = try await store.tableSchema(id: table, user: user)
            guard let primary = linked.fieldsByID[linked.table.primaryFieldID.rawValue] else { continue }
            let sorted = ids.sorted()
            for start in stride(from: 0, to: sorted.count, by: Self.maximumPageSize) {
                let chunk = sorted[start..<min(start + Self.maximumPageSize, sorted.count)]
                let source = "OR(" + chunk.map { "RECORD_ID()='\($0)'" }.joined(separator: ",") + ")"
                let plan = RecordListPlan(
                    filters: [try Formula.parse(source, limits: Formula.Limits())],
                    sort: [],
                    visibleFields: [primary.name],
                    pageSize: chunk.count,
                    cursor: nil,
                    queryHash: ""
                )
                let bytes = try await store.listRecords(schema: linked, plan: plan, user: user)
                for record in try JSONCoding.decoder.decode(StoredPage.self, from: Data(bytes)).data {
                    let value = record.fields[primary.name] ?? .string("")
                    names[record.id] = AirtableCells.string(
                        value,
                        field: primary,
                        format: AirtableCells.StringFormat(timeZone: .gmt)
                    )
                }
            }
        }
        return names
    }

    // MARK: Writes

    /// A write body: one record (`fields`) or up to 10 (`records`), with `typecast`,
    /// `returnFieldsByFieldId` and, for PATCH/PUT, `performUpsert`.
    struct WriteBody: Decodable {
        struct Item: Decodable {
            var id: String?
            var fields: [String: JSONValue]?
        }
        struct Upsert: Decodable {
            var fieldsToMergeOn: [String]
        }
        var fields: [String: JSONValue]?
        var records: [Item]?
        var typecast: Bool?
        var returnFieldsByFieldId: Bool?
        var performUpsert: Upsert?
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let schema = try await schema(context, user: user)
        let body = try await Self.decodeWrite(request)
        var choices: [FieldID: [String]] = [:]
        let typecast = body.typecast ?? false
        if let records = body.records {
            try Self.checkBatch(records.count)
            let downloaded = try await downloadAttachments(
                records.map { $0.fields ?? [:] },
                schema: schema,
                typecast: typecast,
                user: user
            )
            let outcome = try await afterDownloads(downloaded.files, user: user) {
                let operations = try downloaded.fields.map { fields in
                    AirtableRecordOperation.create(
                        fields: try Self.cells(fields, schema: schema, typecast: typecast, choices: &choices)
                    )
                }
                return try await write(
                    schema,
                    AirtableRecordWrite(operations: operations, newChoices: choices),
                    context,
                    downloaded: downloaded.files
                )
            }
            return try Self.recordsAnswer(
                outcome,
                schema: schema,
                byFieldID: body.returnFieldsByFieldId ?? false,
                urls: attachmentURLs(request)
            )
        }
        guard let fields = body.fields else {
            throw AirtableErrors.error(
                .unprocessableContent,
                "INVALID_REQUEST_MISSING_FIELDS",
                "Could not find field \"fields\" in the request body"
            )
        }
        let downloaded = try await downloadAttachments([fields], schema: schema, typecast: typecast, user: user)
        let outcome = try await afterDownloads(downloaded.files, user: user) {
            let operation = AirtableRecordOperation.create(
                fields: try Self.cells(downloaded.fields[0], schema: schema, typecast: typecast, choices: &choices)
            )
            return try await write(
                schema,
                AirtableRecordWrite(operations: [operation], newChoices: choices),
                context,
                downloaded: downloaded.files
            )
        }
        return try Self.singleAnswer(
            outcome,
            schema: schema,
            byFieldID: body.returnFieldsByFieldId ?? false,
            urls: attachmentURLs(request)
        )
    }

    @Sendable func updateOne(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await writeOne(request, context: context, replace: false)
    }

    @Sendable func replaceOne(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await writeOne(request, context: context, replace: true)
    }

    private func writeOne(_ request: Request, context: AppRequestContext, replace: Bool) async throws -> Response {
        let user = try context.requireUser()
        let schema = try await schema(context, user: user)
        let id = try Self.recordID(context.parameters.get("record"))
        let body = try await Self.decodeWrite(request)
        var choices: [FieldID: [String]] = [:]
        let downloaded = try await downloadAttachments(
            [body.fields ?? [:]],
            schema: schema,
            typecast: body.typecast ?? false,
            user: user
        )
        let outcome = try await afterDownloads(downloaded.files, user: user) {
            let operation = AirtableRecordOperation.update(
                id: id,
                fields: try Self.cells(
                    downloaded.fields[0],
                    schema: schema,
                    typecast: body.typecast ?? false,
                    choices: &choices
                ),
                replace: replace
            )
            return try await write(
                schema,
                AirtableRecordWrite(operations: [operation], newChoices: choices),
                context,
                downloaded: downloaded.files
            )
        }
        return try Self.singleAnswer(
            outcome,
            schema: schema,
            byFieldID: body.returnFieldsByFieldId ?? false,
            urls: attachmentURLs(request)
        )
    }

    @Sendable func updateMany(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await writeMany(request, context: context, replace: false)
    }

    @Sendable func replaceMany(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await writeMany(request, context: context, replace: true)
    }

    /// PATCH/PUT of up to 10 records by id, or with `performUpsert`, matched on 1–3 fields.
    private func writeMany(_ request: Request, context: AppRequestContext, replace: Bool) async throws -> Response {
        let user = try context.requireUser()
        let schema = try await schema(context, user: user)
        let body = try await Self.decodeWrite(request)
        guard let records = body.records else {
            throw AirtableErrors.error(
                .unprocessableContent,
                "INVALID_RECORDS",
                "Could not find field \"records\" in the request body"
            )
        }
        try Self.checkBatch(records.count)
        let typecast = body.typecast ?? false
        var choices: [FieldID: [String]] = [:]
        var mergeOn: [FieldID] = []
        if let upsert = body.performUpsert {
            guard (1...3).contains(upsert.fieldsToMergeOn.count) else {
                throw AirtableErrors.invalidRequest("performUpsert.fieldsToMergeOn names 1 to 3 fields")
            }
            mergeOn = try upsert.fieldsToMergeOn.map { try Self.field($0, in: schema).id }
        }
        let downloaded = try await downloadAttachments(
            records.map { $0.fields ?? [:] },
            schema: schema,
            typecast: typecast,
            user: user
        )
        let outcome = try await afterDownloads(downloaded.files, user: user) {
            let operations = try zip(records, downloaded.fields).map { item, given -> AirtableRecordOperation in
                let fields = try Self.cells(given, schema: schema, typecast: typecast, choices: &choices)
                if let raw = item.id {
                    return .update(id: try Self.recordID(raw), fields: fields, replace: replace)
                }
                guard body.performUpsert != nil else {
                    throw AirtableErrors.error(
                        .unprocessableContent,
                        "INVALID_RECORDS",
                        "each record of a PATCH or PUT needs an id (or send performUpsert)"
                    )
                }
                for fieldID in mergeOn {
                    guard let name = schema.fieldsByID[fieldID.rawValue]?.name, fields[name] != nil else {
                        throw AirtableErrors.error(
                            .unprocessableContent,
                            "INVALID_VALUE_FOR_COLUMN",
                            "each record of an upsert needs a value for every field to merge on"
                        )
                    }
                }
                return .upsert(fields: fields, replace: replace)
            }
            return try await write(
                schema,
                AirtableRecordWrite(operations: operations, newChoices: choices, mergeOn: mergeOn),
                context,
                downloaded: downloaded.files
            )
        }
        let byFieldID = body.returnFieldsByFieldId ?? false
        return try Self.recordsAnswer(
            outcome,
            schema: schema,
            byFieldID: byFieldID,
            urls: attachmentURLs(request),
            upsert: body.performUpsert != nil
        )
    }

    @Sendable func deleteOne(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let schema = try await schema(context, user: user)
        let id = try Self.recordID(context.parameters.get("record"))
        _ = try await write(schema, AirtableRecordWrite(operations: [.delete(id: id)]), context)
        return try AirtableJSON.response(Deleted(id: id.rawValue, deleted: true))
    }

    /// `DELETE …?records[]=rec…&records[]=rec…`: up to 10 records in one transaction.
    @Sendable func deleteMany(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let schema = try await schema(context, user: user)
        let ids = try AirtableQuery(request.uri.query.map { Substring($0) }).all("records").map(Self.recordID)
        guard !ids.isEmpty else {
            throw AirtableErrors.error(
                .unprocessableContent,
                "INVALID_RECORDS",
                "name the records to delete in records[]"
            )
        }
        try Self.checkBatch(ids.count)
        _ = try await write(schema, AirtableRecordWrite(operations: ids.map { .delete(id: $0) }), context)
        struct Answer: Encodable { var records: [Deleted] }
        return try AirtableJSON.response(Answer(records: ids.map { Deleted(id: $0.rawValue, deleted: true) }))
    }

    struct Deleted: Encodable {
        var id: String
        var deleted: Bool
    }

    /// What the store answered for a write: `{"created":[…],"results":[…],"updated":[…]}`, the
    /// results as the records' `/api/v1` JSON, kept as bytes.
    struct WriteOutcome {
        var created: [String] = []
        var results: [Substring.UTF8View] = []
        var updated: [String] = []

        init(_ body: Data) throws {
            let text = Substring(decoding: body, as: UTF8.self)
            var created: Substring.UTF8View?
            var updated: Substring.UTF8View?
            var results: [Substring.UTF8View] = []
            RecordJSON.forEachMember(of: text.utf8) { key, value in
                switch key {
                case "created": created = value
                case "updated": updated = value
                case "results": RecordJSON.forEachElement(of: value) { results.append($0) }
                default: break
                }
            }
            guard let created, let updated else {
                throw ServerError(.internalServerError, .server, "the write's answer could not be read")
            }
            self.created = try JSONCoding.decoder.decode([String].self, from: Data(created))
            self.updated = try JSONCoding.decoder.decode([String].self, from: Data(updated))
            self.results = results
        }
    }

    /// Runs `body` (what follows a write's downloads); when it throws, the files downloaded are removed.
    private func afterDownloads<T>(_ files: [FileID], user: UserID, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            await removeDownloads(files, user: user)
            throw error
        }
    }

    /// Runs the write in one transaction; when it fails, the files downloaded for it are removed again.
    private func write(
        _ schema: TableSchema,
        _ write: AirtableRecordWrite,
        _ context: AppRequestContext,
        downloaded: [FileID] = []
    ) async throws -> WriteOutcome {
        let result: WriteResult<EncodedJSON>
        do {
            result = try await store.airtableWrite(table: schema.table.id, write, context: context.write(now: now))
        } catch {
            if let user = context.principal?.userID { await removeDownloads(downloaded, user: user) }
            throw AirtableErrors.recordError(error)
        }
        return try WriteOutcome(result.response.body)
    }

    /// Each record's cells with attachments named by URL downloaded (see ``AttachmentDownloads``), and
    /// the files made. Only an editor's write downloads anything.
    private func downloadAttachments(
        _ records: [[String: JSONValue]],
        schema: TableSchema,
        typecast: Bool,
        user: UserID
    ) async throws -> (fields: [[String: JSONValue]], files: [FileID]) {
        func namesURL(_ value: JSONValue) -> Bool {
            guard case .array(let items) = value else { return false }
            return items.contains { $0["url"] != nil && $0["id"] == nil }
        }
        guard records.contains(where: { $0.values.contains(where: namesURL) }) else { return (records, []) }
        // Every other cell is checked first, so a write that would be refused anyway downloads nothing.
        for fields in records {
            var scratch: [FieldID: [String]] = [:]
            _ = try Self.cells(
                fields.filter { !namesURL($0.value) },
                schema: schema,
                typecast: typecast,
                choices: &scratch
            )
        }
        let workspace = try await services.store.workspace(id: schema.workspaceID, user: user)
        guard workspace.role >= .editor else {
            throw AirtableErrors.error(
                .forbidden,
                "INVALID_PERMISSIONS",
                "writing records needs the editor role or higher; you are \(workspace.role.rawValue)"
            )
        }
        var downloads = AttachmentDownloads(services: services, user: user, workspace: schema.workspaceID, now: now)
        var resolved: [[String: JSONValue]] = []
        for fields in records {
            do {
                resolved.append(try await downloads.resolve(fields, schema: schema))
            } catch {
                await removeDownloads(downloads.files, user: user)
                throw error
            }
        }
        return (resolved, downloads.files)
    }

    /// Removes files downloaded for a write that failed (their bytes too, unless other files share them).
    private func removeDownloads(_ files: [FileID], user: UserID) async {
        let store = services.store
        let write = WriteContext(actor: user, now: now)
        for file in files {
            _ = try? await services.blobs.release {
                try await store.deleteFile(id: file, context: write)
            } sweep: {
                try await store.sweepUnreferencedBlobs()
            }
        }
    }

    /// The written records in Airtable's form, appended to `output` separated by commas.
    private static func appendRecords(
        _ outcome: WriteOutcome,
        schema: TableSchema,
        byFieldID: Bool,
        urls: AttachmentURLs,
        to output: inout [UInt8]
    ) throws {
        for (index, result) in outcome.results.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            guard
                AirtableRecordJSON.append(
                    fromAPI: result,
                    schema: schema,
                    options: .init(byFieldID: byFieldID, attachments: urls),
                    to: &output
                )
            else { throw ServerError(.internalServerError, .server, "the write answered something else than a record") }
        }
    }

    private static func recordsAnswer(
        _ outcome: WriteOutcome,
        schema: TableSchema,
        byFieldID: Bool,
        urls: AttachmentURLs,
        upsert: Bool = false
    ) throws -> Response {
        var output: [UInt8] = Array(#"{"records":["#.utf8)
        try appendRecords(outcome, schema: schema, byFieldID: byFieldID, urls: urls, to: &output)
        output.append(UInt8(ascii: "]"))
        if upsert {
            output.append(contentsOf: #","createdRecords":"#.utf8)
            output.append(contentsOf: try JSONCoding.encoder.encode(outcome.created))
            output.append(contentsOf: #","updatedRecords":"#.utf8)
            output.append(contentsOf: try JSONCoding.encoder.encode(outcome.updated))
        }
        output.append(UInt8(ascii: "}"))
        return AirtableJSON.response(bytes: output)
    }

    private static func singleAnswer(
        _ outcome: WriteOutcome,
        schema: TableSchema,
        byFieldID: Bool,
        urls: AttachmentURLs
    ) throws -> Response {
        guard outcome.results.count == 1 else {
            throw ServerError(.internalServerError, .server, "the write answered no record")
        }
        var output: [UInt8] = []
        try appendRecords(outcome, schema: schema, byFieldID: byFieldID, urls: urls, to: &output)
        return AirtableJSON.response(bytes: output)
    }

    /// A write's cells keyed by field name, converted for their fields' types.
    static func cells(
        _ fields: [String: JSONValue],
        schema: TableSchema,
        typecast: Bool,
        choices: inout [FieldID: [String]]
    ) throws -> [String: FieldValue] {
        var cells: [String: FieldValue] = [:]
        for (key, value) in fields {
            let field = try field(key, in: schema)
            var added = choices[field.id] ?? []
            cells[field.name] = try AirtableCells.input(value, for: field, typecast: typecast, newChoices: &added)
            if !added.isEmpty { choices[field.id] = added }
        }
        return cells
    }

    private static func decodeWrite(_ request: Request) async throws -> WriteBody {
        let buffer = try await request.body.collect(upTo: .max)
        guard buffer.readableBytes > 0 else {
            throw AirtableErrors.error(
                .unprocessableContent,
                "INVALID_REQUEST_MISSING_FIELDS",
                "the request needs a JSON body"
            )
        }
        do {
            return try JSONCoding.decoder.decode(WriteBody.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw AirtableErrors.error(.unprocessableContent, "INVALID_REQUEST_BODY", ErrorMiddleware.describe(error))
        }
    }

    private static func checkBatch(_ count: Int) throws {
        guard (1...maximumBatch).contains(count) else {
            throw AirtableErrors.error(
                .unprocessableContent,
                "INVALID_RECORDS",
                "a request writes 1 to \(maximumBatch) records, not \(count)"
            )
        }
    }

    private static func recordNotFound(_ id: String) -> ServerError {
        AirtableErrors.error(.notFound, "MODEL_ID_NOT_FOUND", "Record not found: \(id)")
    }

    private static func recordID(_ raw: String?) throws -> RecordID {
        guard let raw, let id = RecordID(raw) else { throw recordNotFound(raw ?? "") }
        return id
    }

    // MARK: Parameters

    private static func integer(_ raw: String?, _ name: String) throws -> Int? {
        guard let raw, !raw.isEmpty else { return nil }
        guard let value = Int(raw) else { throw AirtableErrors.invalidRequest("\(name) must be a whole number") }
        return value
    }

    private static func integer(_ value: JSONValue?, _ name: String) throws -> Int? {
        switch value {
        case nil, .null?: return nil
        case .number(let number)? where number == number.rounded() && abs(number) < 1e9: return Int(number)
        case .string(let text)?: return try integer(text, name)
        default: throw AirtableErrors.invalidRequest("\(name) must be a whole number")
        }
    }

    private static func text(_ value: JSONValue?, _ name: String) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?: return text
        default: throw AirtableErrors.invalidRequest("\(name) must be a string")
        }
    }

    private static func texts(_ value: JSONValue?, _ name: String) throws -> [String] {
        switch value {
        case nil, .null?: return []
        case .array(let items)?:
            return try items.map { item in
                guard case .string(let text) = item else {
                    throw AirtableErrors.invalidRequest("\(name) must list strings")
                }
                return text
            }
        default: throw AirtableErrors.invalidRequest("\(name) must be a list of strings")
        }
    }

    private static func flag(_ raw: String?) -> Bool {
        guard let raw else { return false }
        return ["1", "true", "yes"].contains(raw.lowercased())
    }

    struct StoredPage: Decodable {
        var data: [AirtableCells.StoredRecordJSON]
        var nextCursor: String?

        enum CodingKeys: String, CodingKey {
            case data
            case nextCursor = "next_cursor"
        }
    }

    struct RecordPage: Encodable {
        var records: [AirtableCells.AirtableRecord]
        var offset: String?
    }
}
