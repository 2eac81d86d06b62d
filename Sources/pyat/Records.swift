import ArgumentParser
import Foundation
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat records …`.
    struct Records: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, create, update and delete records.",
            subcommands: [List.self, Get.self, Create.self, Update.self, Delete.self, Comments.self]
        )
    }
}

extension Pyat.Records {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a table's records: one page, or every page with --all.",
            discussion: """
                Examples:
                  pyat records list tbl… --filter "AND({Status} = 'Done', {Score} > 3)" --sort Score:desc
                  pyat records list tbl… --fields Name,Score --all --format csv > projects.csv
                """
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: TableID

        @Option(help: "A view (id or name) whose filter, sort and fields apply.")
        var view: String?

        @Option(help: ArgumentHelp("Only these fields, comma-separated.", valueName: "a,b"))
        var fields: String?

        @Option(help: ArgumentHelp("Sort keys, such as Score:desc,Name.", valueName: "sort"))
        var sort: String?

        @Option(help: ArgumentHelp("A formula records must match, such as \"{Score} > 3\".", valueName: "formula"))
        var filter: String?

        @Option(name: .customLong("page-size"), help: "Records per page (1 to \(RecordQuery.maximumPageSize)).")
        var pageSize: Int?

        @Option(help: "Start at this page (the cursor a previous page reported).")
        var cursor: String?

        @Flag(help: "Fetch every page, not just the first.")
        var all = false

        func validate() throws {
            _ = try query()
            if let pageSize, !(1...RecordQuery.maximumPageSize).contains(pageSize) {
                throw ValidationError("--page-size must be from 1 to \(RecordQuery.maximumPageSize)")
            }
        }

        private var fieldNames: [String]? {
            fields.map { list in
                list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
        }

        private func query() throws -> RecordQuery {
            var sortSpecs: [SortSpec]?
            if let sort {
                do {
                    sortSpecs = try SortSpec.parseList(sort)
                } catch {
                    throw ValidationError("--sort: \(error.description)")
                }
            }
            return RecordQuery(
                view: view,
                fields: fieldNames,
                sort: sortSpecs,
                filter: filter,
                pageSize: pageSize,
                cursor: cursor
            )
        }

        func run() async throws {
            let query = try query()
            let output = options.output
            let (records, nextCursor, schema) = try await options.withClient { client in
                var records: [Record] = []
                var nextCursor: String?
                var query = query
                var notice = CachedAnswerNotice()
                repeat {
                    let page = try await client.records.listWithSource(in: table, query: query)
                    notice.note(page)
                    records += page.value.data
                    // Records created offline and not yet on the server show after the last page.
                    if page.value.nextCursor == nil { records += page.pendingCreates.map(\.displayRecord) }
                    nextCursor = page.value.nextCursor
                    query.cursor = nextCursor
                } while all && nextCursor != nil
                let schema = output.showsColumns ? try await client.tables.getWithSource(table) : nil
                if let schema { notice.note(schema) }
                notice.print(what: "records")
                return (records, nextCursor, schema?.value)
            }
            let names = RecordColumns.names(table: schema, requested: fieldNames, view: view, records: records)
            try output.list(records, columns: Record.columns(fields: names))
            if let nextCursor {
                FileHandle.standardError.write(
                    Data("note: more records follow; pass --all for every page, or --cursor \(nextCursor)\n".utf8)
                )
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a record.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The record id (rec…), or the temporary id (tmp_…) of a record created offline.")
        var record: RecordArgument

        func run() async throws {
            let reference = record.reference
            let output = options.output
            let (record, schema) = try await options.withClient { client in
                var notice = CachedAnswerNotice()
                let id: RecordID
                switch reference {
                case .server(let serverID):
                    id = serverID
                case .temporary(let temporary):
                    if let serverID = await client.records.resolve(temporary) {
                        id = serverID
                    } else if let pending = await client.records.pending(temporary) {
                        // Not on the server yet: shown as its pending writes make it.
                        let record = pending.displayRecord
                        var schema: Table?
                        if output.showsColumns, let table = pending.tableID {
                            schema = try await client.tables.get(table)
                        }
                        return (record, schema)
                    } else {
                        throw CommandFailure("no pending write creates record \(temporary)")
                    }
                }
                let record = try await client.records.getWithSource(id)
                notice.note(record)
                let schema = output.showsColumns ? try await client.tables.getWithSource(record.value.tableID) : nil
                if let schema { notice.note(schema) }
                notice.print(what: "record")
                return (record.value, schema?.value)
            }
            try output.item(
                record,
                columns: Record.columns(fields: RecordColumns.names(table: schema, records: [record]))
            )
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a record.",
            discussion: """
                Examples:
                  pyat records create tbl… --field Name=Launch --field Score=7 --field Tags=backend,docs
                  pyat records create tbl… --json '{"Name": "Launch", "Score": 7}'
                """
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: TableID

        @OptionGroup var values: RecordFieldArguments

        func run() async throws {
            let output = options.output
            let (result, schema) = try await options.withClient { client in
                let schema = values.needsSchema || output.showsColumns ? try await client.tables.get(table) : nil
                let result = try await client.records.create(in: table, fields: try values.values(table: schema))
                return (result, schema)
            }
            guard case .saved(let record) = result else { throw CommandFailure(queued: result.queued!) }
            try output.item(
                record,
                columns: Record.columns(fields: RecordColumns.names(table: schema, records: [record]))
            )
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a record's fields (the others stay, unless --replace).",
            discussion: """
                Examples:
                  pyat records update rec… --field Score=8 --field Notes= --if-version 3
                  pyat records update rec… --json '{"Status": "Done"}'
                """
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The record id (rec…), or the temporary id (tmp_…) of a record created offline.")
        var record: RecordArgument

        @OptionGroup var values: RecordFieldArguments

        @Flag(help: "Replace all fields: those not given are cleared.")
        var replace = false

        @OptionGroup var precondition: VersionPrecondition
        @OptionGroup var conflict: ConflictOption

        func validate() throws {
            guard !values.isEmpty else { throw ValidationError("give --field Name=value or --json") }
            try record.refusesPreconditions(precondition, conflict)
        }

        func run() async throws {
            let reference = record.reference
            let output = options.output
            let replace = self.replace
            let ifVersion = precondition.ifVersion
            let strategy = conflict.resolved(ifVersion: ifVersion)
            let (result, schema) = try await options.withClient { client in
                var schema: Table?
                if values.needsSchema || output.showsColumns {
                    let table: TableID? =
                        switch reference {
                        case .server(let id): try await client.records.get(id).tableID
                        case .temporary(let id):
                            if let serverID = await client.records.resolve(id) {
                                try await client.records.get(serverID).tableID
                            } else {
                                await client.records.pending(id)?.tableID
                            }
                        }
                    guard let table else { throw CommandFailure("no pending write creates record \(reference)") }
                    schema = try await client.tables.get(table)
                }
                let fields = try values.values(table: schema)
                let result: WriteResult<Record> =
                    switch (reference, replace) {
                    case (.server(let id), true):
                        try await client.records.replace(id, fields: fields, ifVersion: ifVersion, onConflict: strategy)
                    case (.server(let id), false):
                        try await client.records.update(id, fields: fields, ifVersion: ifVersion, onConflict: strategy)
                    case (.temporary(let id), true): try await client.records.replace(id, fields: fields)
                    case (.temporary(let id), false): try await client.records.update(id, fields: fields)
                    }
                return (result, schema)
            }
            guard case .saved(let record) = result else { throw CommandFailure(queued: result.queued!) }
            try output.item(
                record,
                columns: Record.columns(fields: RecordColumns.names(table: schema, records: [record]))
            )
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a record.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The record id (rec…), or the temporary id (tmp_…) of a record created offline.")
        var record: RecordArgument

        @OptionGroup var precondition: VersionPrecondition
        @OptionGroup var conflict: ConflictOption

        func validate() throws {
            try record.refusesPreconditions(precondition, conflict)
        }

        func run() async throws {
            let reference = record.reference
            let strategy = conflict.resolved(ifVersion: precondition.ifVersion)
            let result = try await options.withClient { client in
                switch reference {
                case .server(let id):
                    try await client.records.delete(id, ifVersion: precondition.ifVersion, onConflict: strategy)
                case .temporary(let id):
                    try await client.records.delete(id)
                }
            }
            guard case .saved(let deleted) = result else { throw CommandFailure(queued: result.queued!) }
            if !deleted.deleted {
                throw CommandFailure(
                    "record \(reference) changed meanwhile and was kept (--on-conflict server-wins)",
                    status: .conflict
                )
            }
            if options.format == .table {
                options.output.message("Deleted record \(deleted.id).")
            } else {
                try options.output.item(deleted)
            }
        }
    }
}

/// Which field columns record output shows, and in what order.
enum RecordColumns {
    /// The requested fields; else the view's visible fields; else the table's fields in order. Without
    /// the table, the field names the records hold, sorted.
    static func names(table: Table?, requested: [String]? = nil, view: String? = nil, records: [Record]) -> [String] {
        if let requested, !requested.isEmpty { return requested }
        guard let table else { return Set(records.flatMap(\.fields.keys)).sorted() }
        if let view, let match = table.views.first(where: { $0.id.rawValue == view || $0.name == view }),
            let fields = match.fields, !fields.isEmpty
        {
            return fields
        }
        return table.fields.map(\.name)
    }
}

extension OutputWriter {
    /// Whether the format shows chosen columns (and so needs a table's field order).
    var showsColumns: Bool { format == .table || format == .csv }
}

extension PendingRecord {
    /// The record for printing: a pending create shows under its temporary id, version 0.
    var displayRecord: Record {
        Record(
            id: RecordID(unchecked: id.rawValue),
            tableID: tableID ?? TableID(unchecked: "tbl"),
            fields: fields,
            version: baseVersion ?? 0,
            createdAt: createdAt,
            updatedAt: createdAt
        )
    }
}

extension RecordArgument {
    /// A record created offline has no version yet: `--if-version` and `--on-conflict` cannot apply to
    /// it, so they are refused rather than ignored.
    func refusesPreconditions(_ precondition: VersionPrecondition, _ conflict: ConflictOption) throws {
        guard case .temporary = reference else { return }
        if precondition.ifVersion != nil || conflict.strategy != nil {
            throw ValidationError(
                "--if-version and --on-conflict do not apply to a record created offline (\(reference)): "
                    + "it has no version until its create reaches the server"
            )
        }
    }
}
