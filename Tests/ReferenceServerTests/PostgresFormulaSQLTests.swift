import Foundation
import PostgresNIO
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

/// SplitMix64: a small seeded generator, so every run draws the same records and formulas.
private struct PostgresFormulaRandom: RandomNumberGenerator {
    var state: UInt64

    /// The next 64 random bits.
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// One of `options`.
    mutating func pick<T>(_ options: [T]) -> T {
        options[Int.random(in: 0..<options.count, using: &self)]
    }

    /// True with `probability`.
    mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &self) < probability
    }
}

/// A table with a field of every kind filters push down, filled with the same records in any store:
/// `Key` (`k0000`, `k0001`, …) tells the records apart across stores, whose record ids differ.
private struct FilterTable: Sendable {
    /// What the fixture needs of a store.
    typealias Store = AccountRepository & WorkspaceRepository & SchemaRepository & RecordRepository

    let store: any Store
    let user: UserID
    let schema: TableSchema
    /// Record id by key.
    let ids: [String: String]

    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let statuses = ["Done", "Todo", "In progress", "done", "Ünïcode"]
    static let tagChoices = ["a", "b", "A", "É", "c d", "Done"]

    /// One record: cells by field name, and `Links` as indexes into the linked table's records.
    struct Row: Sendable {
        var cells: [String: FieldValue]
        var links: [Int]
    }

    static let texts = [
        "Alice", "alice", "ALICE", "Bob", "bob smith", "Émile", "émile", "Zoë", "a b", "  padded  ", "O'Brien", "5",
        "3.5", "-2", "0", "\u{212A}elvin", "straße", "a, b", "Done", "done", "x", "\ttab", "back\\slash", "日本",
        "😀 smile",
        "İstanbul", "ǅ", "e\u{301}", "rec", "li", "Zebra", "zebra", "M", "",
    ]
    static let numbers: [Double] = [
        0, -0.0, 1, 2, 3, 3.5, -1, -2.25, 7, 10, 100, 0.1, 0.3, 0.1 + 0.2, 1e15, 1e20, 1e-7, .leastNonzeroMagnitude,
        1.797_693_134_862_315_7e308, 42, -100, 2.5, 123_456_789.125,
    ]

    /// `count` records drawn from `seed`.
    static func rows(count: Int, seed: UInt64) -> [Row] {
        var random = PostgresFormulaRandom(state: seed)
        /// `value`, or (a fifth of the time) no value.
        func maybe(_ value: @autoclosure () -> FieldValue) -> FieldValue? {
            random.chance(0.22) ? nil : value()
        }
        return (0..<count).map { index in
            var cells: [String: FieldValue] = ["Key": .string(String(format: "k%04d", index))]
            cells["Name"] = maybe(.string(random.pick(texts)))
            cells["Notes"] = maybe(.string(random.pick(texts + ["line 1\nline 2", "\r\n x \n", " Alice "])))
            cells["Status"] = maybe(.string(random.pick(statuses)))
            cells["Email"] = maybe(.string(random.pick(["a@example.com", "Bob@Example.com", "zoë@example.org"])))
            cells["Score"] = maybe(.number(random.pick(numbers)))
            cells["Amount"] = maybe(.number(random.pick(numbers)))
            cells["Done"] = maybe(.bool(random.chance(0.5)))
            cells["Tags"] = maybe(
                .strings(Array(Set((0..<Int.random(in: 1...3, using: &random)).map { _ in random.pick(tagChoices) })))
            )
            cells["Due"] = maybe(.string(random.pick(["2024-01-05", "2023-12-31", "2024-06-01", "2024-02-29"])))
            cells["When"] = maybe(
                .string(
                    random.pick([
                        "2024-01-05T10:00:00.000Z", "2024-01-04T23:59:59.000Z", "2024-06-01T12:00:00.000Z",
                    ])
                )
            )
            for name in Array(cells.keys) where cells[name] == nil { cells.removeValue(forKey: name) }
            let links =
                random.chance(0.3)
                ? [] : (0..<Int.random(in: 1...2, using: &random)).map { _ in Int.random(in: 0..<3, using: &random) }
            return Row(cells: cells, links: Array(Set(links)).sorted())
        }
    }

    /// Makes the user, workspace, base, a linked table of three records and the table, with `rows`.
    static func make(_ store: any Store, rows: [Row]) async throws -> FilterTable {
        let created = try await store.createUser(
            email: "owner@example.com",
            name: "Owner",
            passwordHash: "x",
            context: WriteContext(actor: nil, now: now)
        )
        let user = try #require(created.value).id
        let context = WriteContext(actor: user, now: now)
        let workspace = try #require(try await store.createWorkspace(.init(name: "W"), context: context).value)
        let base = try #require(
            try await store.createBase(workspace: workspace.id, .init(name: "B"), context: context).value
        )
        let other = try #require(
            try await store.createTable(
                base: base.id,
                CreateTableRequest(name: "Other", fields: [.singleLineText("Title")]),
                context: context
            ).value
        )
        var otherIDs: [String] = []
        for index in 0..<3 {
            let record = try #require(
                try await store.createRecord(table: other.id, fields: ["Title": .string("o\(index)")], context: context)
                    .value
            )
            otherIDs.append(record.id.rawValue)
        }
        let table = try #require(
            try await store.createTable(
                base: base.id,
                CreateTableRequest(
                    name: "T",
                    fields: [
                        .singleLineText("Key"), .singleLineText("Name"), .multilineText("Notes"),
                        .singleSelect("Status", choices: statuses), .email("Email"), .number("Score"),
                        .number("Amount"), .checkbox("Done"), .multipleSelects("Tags", choices: tagChoices),
                        .links("Links", to: other.id), .date("Due"), .dateTime("When"),
                    ]
                ),
                context: context
            ).value
        )
        for chunk in stride(from: 0, to: rows.count, by: 100) {
            let operations = rows[chunk..<min(chunk + 100, rows.count)].map { row in
                var cells = row.cells
                if !row.links.isEmpty { cells["Links"] = .strings(row.links.map { otherIDs[$0] }) }
                return BatchOperation.create(fields: cells)
            }
            _ = try await store.batch(table: table.id, operations: operations, context: context)
        }
        let schema = try await store.tableSchema(id: table.id, user: user)
        let partial = FilterTable(store: store, user: user, schema: schema, ids: [:])
        var ids: [String: String] = [:]
        for record in try await partial.records(filter: nil, sort: [], pageSize: 100) {
            if case .string(let key)? = record.fields["Key"] { ids[key] = record.id.rawValue }
        }
        return FilterTable(store: store, user: user, schema: schema, ids: ids)
    }

    /// A page lister: the store's own, or another path to the same store (PostgreSQL without pushdown).
    typealias Lister = @Sendable (TableSchema, RecordListPlan, UserID) async throws -> RecordListParts

    /// Every record the list returns, page by page through cursors.
    func records(
        filter: String?,
        sort: [SortSpec],
        pageSize: Int,
        lister: Lister? = nil,
        parseLimits: Formula.Limits = .default
    ) async throws -> [Record] {
        let list: Lister = lister ?? { [store] in try await store.listRecordParts(schema: $0, plan: $1, user: $2) }
        let formula = try filter.map { try Formula.parse(resolve($0), limits: parseLimits) }
        var records: [Record] = []
        var cursor: String?
        var pages = 0
        repeat {
            let plan = RecordListPlan(
                filters: formula.map { [$0] } ?? [],
                sort: try sort.map { (field: try #require(schema.fieldsByName[$0.field]), direction: $0.direction) },
                visibleFields: nil,
                pageSize: pageSize,
                cursor: cursor,
                queryHash: "parity"
            )
            let page = try await list(schema, plan, user)
            records += try page.records.map { try JSONCoding.decoder.decode(Record.self, from: Data($0)) }
            cursor = page.nextCursor
            pages += 1
        } while cursor != nil && pages < 10_000
        return records
    }

    /// The keys of the records the list returns, in order.
    func keys(filter: String?, sort: [SortSpec], pageSize: Int, lister: Lister? = nil) async throws -> [String] {
        try await records(filter: filter, sort: sort, pageSize: pageSize, lister: lister).map(Self.key)
    }

    /// The keys of the records the Swift evaluator accepts, in the unfiltered list's order.
    func evaluatorKeys(
        filter: String,
        sort: [SortSpec],
        parseLimits: Formula.Limits = .default
    ) async throws -> [String] {
        try matchingKeys(
            filter,
            in: try await records(filter: nil, sort: sort, pageSize: 100),
            parseLimits: parseLimits
        )
    }

    /// The keys of the `records` the Swift evaluator accepts, in order.
    func matchingKeys(
        _ filter: String,
        in records: [Record],
        parseLimits: Formula.Limits = .default
    ) throws -> [String] {
        let formula = try Formula.parse(resolve(filter), limits: parseLimits)
        let types = Dictionary(uniqueKeysWithValues: schema.table.fields.map { ($0.name, $0.type) })
        return
            records
            .filter { formula.matches(FormulaRecordValues(id: $0.id.rawValue, values: $0.fields, types: types)) }
            .map(Self.key)
    }

    /// `filter` with each `#n#` replaced by the id of the record keyed `k000n` in this store.
    func resolve(_ filter: String) -> String {
        var resolved = filter
        for index in 0..<10 {
            resolved = resolved.replacingOccurrences(
                of: "#\(index)#",
                with: ids[String(format: "k%04d", index)] ?? "recMissing"
            )
        }
        return resolved
    }

    /// A record's `Key`.
    static func key(_ record: Record) -> String {
        if case .string(let key)? = record.fields["Key"] { return key }
        return "?"
    }

    /// The fields as ``PostgresFormulaSQL/compile(_:fields:recordIDColumn:fieldsJSON:)`` takes them.
    var columns: [String: (id: String, type: FieldType)] {
        Dictionary(uniqueKeysWithValues: schema.table.fields.map { ($0.name, (id: $0.id.rawValue, type: $0.type)) })
    }
}

/// Formulas over ``FilterTable``'s fields: every kind of push-down, with blanks, numbers, text with
/// case, accents and emoji, checkboxes, dates, lists, record ids (`#n#`), nesting, and formulas that
/// must stay (partly) in Swift.
private let filterCorpus: [String] = [
    // Numbers.
    "{Score} > 3", "{Score} >= 3", "{Score} < 0", "{Score} <= -1", "{Score} = 0", "{Score} != 0",
    "{Score} = BLANK()", "{Score} != BLANK()", "{Score} = ''", "{Score} = '3'", "{Score} = ' 3.5 '",
    "{Score} = 'abc'", "{Score} != 'abc'", "{Score} = 0.3", "{Score} = 0.1 + 0.2", "{Score} > 1000000000000000",
    "{Score} = 100000000000000000000", "{Score} < 0.000001", "AND({Score} > 0, {Score} < 0.000001)",
    "{Score} > 10000000000000000000000000000000000000000000000000", "{Score} = 123456789.125",
    "{Score} = TRUE()", "{Score} = DATETIME_PARSE('2024-01-05')", "{Score} != DATETIME_PARSE('2024-01-05')",
    "{Score}", "NOT({Score})", "{Amount} <= -1", "{Amount} = -0", "3 < {Amount}", "-{Score} > 2",
    "{Score} * 2 > 5", "{Score} > {Amount}",
    // Checkboxes.
    "{Done}", "NOT({Done})", "{Done} = TRUE()", "{Done} = FALSE()", "{Done} = 0", "{Done} = 1", "{Done} != 1",
    "{Done} = BLANK()", "{Done} = 'x'", "{Done} > 0", "{Done} = '1'",
    // Text.
    "{Name} = 'Alice'", "{Name} = 'alice'", "{Name} != 'Alice'", "{Name} = ''", "{Name} = BLANK()", "{Name} != ''",
    "{Name}", "NOT({Name})", "{Name} < 'M'", "{Name} >= 'a'", "{Name} > 'Z'", "{Name} < 'É'", "{Name} > 'z'",
    "{Name} < '😀'", "{Name} >= '日'", "{Name} = 'Émile'", "{Name} = 'straße'", "{Name} = '5'", "{Name} = 5",
    "{Name} = '  padded  '", "{Name} = 'e\u{301}'", "{Name} = 'é'", "'M' > {Name}", "{Notes} = 'line 1\nline 2'",
    "{Notes} != BLANK()", #"{Name} = "x'); DROP TABLE records; --""#, "{Name} = 'alice\u{0}x'", "{Name} != 'Done\u{0}'",
    // Text functions.
    "LOWER({Name}) = 'alice'", "UPPER({Name}) = 'ALICE'", "LOWER({Name}) = 'émile'", "UPPER({Name}) = 'STRASSE'",
    "LOWER({Name}) < 'b'", "LOWER({Name}) = 'kelvin'", "UPPER({Notes}) != ''", "LOWER({Status}) = 'done'",
    "LEN({Name}) > 4", "LEN({Name}) = 0", "LEN({Notes}) >= 10", "LEN({Name}) = 1", "LEN(TRIM({Name})) = 6",
    "TRIM({Name}) = 'padded'", "TRIM({Notes}) = 'Alice'", "TRIM({Notes}) != {Notes}",
    "FIND('li', {Name})", "FIND('li', {Name}) > 0", "FIND('a', {Name}, 2) > 0", "FIND('e', {Name}, 3) = 0",
    "FIND('é', {Name})", "FIND('😀', {Name}) = 1", "FIND('b', {Name}, 99)", "FIND('i', {Name}, 2) = 3",
    "FIND('e', {Name}, 2) = 5",
    "SEARCH('L', {Name}, 2) = 2", "FIND('a', {Name}, 2) = 0", "FIND('l', {Name}, -3) = 2",
    "FIND('', {Name})", "FIND('e\u{301}', {Name}) = 1", "SEARCH('ALI', {Name})", "SEARCH('ali', {Name}) = 1",
    "SEARCH('k', {Name})", "SEARCH('e', {Notes}, 4)", "SEARCH('É', {Name})", "NOT(SEARCH('o', {Email}))",
    "SEARCH('s', {Name}) = BLANK()", "FIND('a', LOWER({Name})) = 1", "LEN(LOWER({Name})) = 5",
    // Selects, emails, lists.
    "{Status} = 'Done'", "{Status} = 'done'", "{Status} != BLANK()", "{Status} < 'E'", "{Status} = 'Ünïcode'",
    "{Email} = 'a@example.com'", "{Email} != BLANK()", "{Tags}", "NOT({Tags})", "{Tags} = BLANK()",
    "{Tags} != ''", "{Tags} = 'a'", "{Tags} = 1", "{Tags} != 1", "FIND('a', {Tags})", "{Links}", "{Links} = BLANK()",
    "NOT({Links})", "{Links} != ''",
    // Dates, compared as text or left to Swift.
    "{Due} < '2024-02-01'", "{Due} = '2024-01-05'", "{Due} >= '2024'", "IS_BEFORE({Due}, '2024-03-01')",
    "AND({Status} = 'Done', IS_BEFORE({Due}, '2024-03-01'))", "{When} > '2024-01-05'", "{When} = BLANK()",
    "DATETIME_PARSE({When}) > DATETIME_PARSE('2024-01-05')", "{Due} = DATETIME_PARSE('2024-01-05')",
    // Record ids.
    "RECORD_ID() = '#0#'", "RECORD_ID() != '#1#'", "OR(RECORD_ID() = '#0#', RECORD_ID() = '#2#', '#5#' = RECORD_ID())",
    "OR(RECORD_ID() = '#0#', {Score} > 30)", "AND(OR(RECORD_ID()='#3#', RECORD_ID()='#4#'), {Done})",
    "RECORD_ID() < '#5#'", "LEN(RECORD_ID()) = 17", "FIND('rec', RECORD_ID()) = 1", "NOT(RECORD_ID() = '#6#')",
    "OR(RECORD_ID() = '#7#', RECORD_ID() = 'recNOPE0000000000')",
    // Logic, nesting, IF, booleans as values.
    "IF({Score} > 10, {Done}, {Name} != 'x')", "IF({Done}, {Score} > 2)",
    "IF(LOWER({Name}) = 'alice', TRUE(), {Score} < 0)",
    "AND({Score}, NOT({Name} < 'M'))",
    "OR(AND({Score} > 1, NOT({Done})), AND({Name} = BLANK(), OR({Tags}, {Status} = 'Todo')))",
    "NOT(OR({Score} > 3, AND({Done}, NOT({Name}))))",
    "AND(OR({Score} = 1, {Score} = 2, {Score} = 3), NOT({Status} = 'Done'))",
    "NOT(AND({Score} > 0, LOWER({Name}) = 'bob'))", "OR({Score} > 100, {Score} * 2 > 5)",
    "AND({Score} > 1, {Score} * 2 > 5)",
    "AND({Score} > 1, OR({Done}, {Score} * 2 > 5))", "NOT(AND({Done}, {Score} * 2 > 5))", "({Score} > 3) = TRUE()",
    "({Score} > 3) != 1", "({Name} = 'x') = 0", "IF({Score} * 2 > 5, {Done}, {Done})", "AND(NOT(NOT({Done})), {Tags})",
    "OR(NOT({Score} >= 0), NOT({Score} <= 0))", "IF(SEARCH('é', {Name}), {Done}, NOT({Done}))",
    "AND({Name} != BLANK(), OR(LOWER({Name}) = 'alice', UPPER({Name}) = 'BOB', LEN({Name}) > 8))",
    "TRUE()", "FALSE()", "1", "''", "BLANK()", "AND({Score} > 3, 0)", "OR({Score} > 3, 1)", "NOT(FALSE())",
]

/// Draws random formulas over ``FilterTable``'s fields.
private struct FilterFormulaGenerator {
    var random: PostgresFormulaRandom

    static let textFields = ["Name", "Notes", "Status", "Email", "Due", "When"]
    static let numberFields = ["Score", "Amount"]
    static let allFields = [
        "Name", "Notes", "Status", "Email", "Score", "Amount", "Done", "Tags", "Links", "Due", "When",
    ]
    static let operators = ["=", "!=", "<>", "<", "<=", ">", ">="]

    /// A reference to one of `names`.
    mutating func field(_ names: [String] = allFields) -> String { "{\(random.pick(names))}" }

    /// A formula string literal for `text`.
    mutating func quoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    /// A constant: a number, text, a function without fields, or a record id (`'#n#'`).
    mutating func constant() -> String {
        switch Int.random(in: 0..<9, using: &random) {
        case 0...2:
            return random.pick([
                "0", "1", "2", "3", "3.5", "7", "10", "0.1", "100", "-1", "-2.25", "1000000000000000", "- 0",
            ])
        case 3...6:
            return quoted(
                random.pick([
                    "", "Alice", "alice", "a", "b", "A", "3", " 2 ", "abc", "Done", "done", "M", "É", "日本",
                    "2024-01-05", "x",
                ])
            )
        case 7:
            return random.pick(["BLANK()", "TRUE()", "FALSE()", "''"])
        default:
            return random.pick([
                "DATETIME_PARSE('2024-01-05')", "(1 + 2)", "'x' & 'y'", "1 / 0", "LOWER('ABC')", "'#2#'",
            ])
        }
    }

    /// A value: a field, `RECORD_ID()`, a text function, arithmetic, `IF`, a predicate, or a constant.
    mutating func value(_ depth: Int) -> String {
        switch Int.random(in: 0..<18, using: &random) {
        case 0...7: return field()
        case 8: return "RECORD_ID()"
        case 9: return "\(random.pick(["LOWER", "UPPER", "TRIM"]))(\(field(Self.textFields + ["Tags", "Score"])))"
        case 10: return "LEN(\(field(Self.textFields)))"
        case 11:
            let start = random.chance(0.3) ? ", \(random.pick(["1", "2", "4", "0", "99", "'2'"]))" : ""
            let needle = quoted(random.pick(["a", "A", "o", "li", "é", "É", "e", "-", "\u{212A}", "😀"]))
            return "\(random.pick(["FIND", "SEARCH"]))(\(needle), \(field(Self.textFields + ["Tags"])) \(start))"
        case 12: return "\(field(Self.numberFields)) \(random.pick(["+", "*"])) \(constant())"
        case 13: return depth > 0 ? "IF(\(predicate(depth - 1)), \(value(depth - 1)), \(value(depth - 1)))" : field()
        case 14: return depth > 0 ? "(\(predicate(depth - 1)))" : field()
        default: return constant()
        }
    }

    /// A condition nesting at most `depth` logical functions.
    mutating func predicate(_ depth: Int) -> String {
        switch Int.random(in: 0..<(depth > 0 ? 16 : 9), using: &random) {
        case 0...4:
            let op = random.pick(Self.operators)
            switch Int.random(in: 0..<5, using: &random) {
            case 0...2: return "\(value(depth)) \(op) \(constant())"
            case 3: return "\(constant()) \(op) \(value(depth))"
            default: return "\(value(depth)) \(op) \(value(depth))"
            }
        case 5: return "\(field()) = BLANK()"
        case 6: return value(depth)
        case 7: return "RECORD_ID() \(random.pick(["=", "!="])) '#\(Int.random(in: 0..<10, using: &random))#'"
        case 8: return "IS_BEFORE(\(field(["Due", "When"])), '2024-03-01')"
        case 9...11:
            let parts = (0..<Int.random(in: 1...3, using: &random)).map { _ in predicate(depth - 1) }
            return "\(random.pick(["AND", "OR"]))(\(parts.joined(separator: ", ")))"
        case 12...13: return "NOT(\(predicate(depth - 1)))"
        case 14: return "IF(\(predicate(depth - 1)), \(predicate(depth - 1)), \(predicate(depth - 1)))"
        default: return "AND(\(predicate(depth - 1)), \(predicate(depth - 1)))"
        }
    }
}

/// Filters pushed down to PostgreSQL (``PostgresFormulaSQL``) select exactly the records the Swift
/// evaluator does (and SQLite's store), spare the scan limit, and stay within their budget.
@Suite("PostgreSQL formula SQL", .timeLimit(.minutes(10)))
struct PostgresFormulaSQLTests {
    static let sorts: [[SortSpec]] = [
        [], [SortSpec(field: "Score", direction: .asc)],
        [SortSpec(field: "Name", direction: .desc), SortSpec(field: "Score", direction: .asc)],
    ]

    /// The key test: for every formula of the corpus and as many random ones, PostgreSQL's filtered
    /// list (every page, in order) is SQLite's and the evaluator's, and most formulas run in SQL.
    @Test func filteredListsMatchSQLiteAndTheEvaluator() async throws {
        let rows = FilterTable.rows(count: 160, seed: 0x5EED_0F0F)
        let directory = try TemporaryDirectory()
        let sqlite = try await FilterTable.make(try StorageFactory.open(directory.path), rows: rows)
        var generator = FilterFormulaGenerator(random: PostgresFormulaRandom(state: 42))
        let formulas =
            filterCorpus + (0..<160).map { _ in generator.predicate(Int.random(in: 0...3, using: &generator.random)) }
        try await PostgresCluster.withStores { stores in
            let postgres = try await FilterTable.make(stores[0], rows: rows)
            let strictStore = PostgresStore(
                database: stores[0].database,
                logger: Harness.logger,
                limits: RequestLimits(maximumFilterScanRows: 0)
            )
            let exact: FilterTable.Lister = { try await strictStore.listRecordParts(schema: $0, plan: $1, user: $2) }
            // Every record in each order, once: the evaluator's answers are these, filtered.
            var unfiltered: [[Record]] = []
            var unfilteredOnSQLite: [[Record]] = []
            for sort in Self.sorts {
                unfiltered.append(try await postgres.records(filter: nil, sort: sort, pageSize: 100))
                unfilteredOnSQLite.append(try await sqlite.records(filter: nil, sort: sort, pageSize: 100))
            }
            #expect(unfiltered.map { $0.map(FilterTable.key) } == unfilteredOnSQLite.map { $0.map(FilterTable.key) })
            var fullyPushed = 0
            var partlyPushed = 0
            var nonTrivial = 0
            for (index, source) in formulas.enumerated() {
                let sort = Self.sorts[index % Self.sorts.count]
                let pageSize = [7, 50][index % 2]
                let expected = try postgres.matchingKeys(source, in: unfiltered[index % Self.sorts.count])
                let actual = try await postgres.keys(filter: source, sort: sort, pageSize: pageSize)
                let fromSQLite = try await sqlite.keys(filter: source, sort: sort, pageSize: pageSize)
                let plan = PostgresFormulaSQL.compile(
                    try Formula.parse(postgres.resolve(source)),
                    fields: postgres.columns
                )
                #expect(
                    actual == expected,
                    """
                    #\(index) \(source) (sort \(SortSpec.format(sort))): \(actual.count) rows, expected \(expected.count)
                    condition: \(plan.condition?.sql ?? "nil")
                    verdict: \(plan.verdict?.sql ?? "nil") \(plan.verdict?.arguments ?? []) residual: \(plan.needsResidual)
                    """
                )
                // Record ids differ between the stores, and so may what a formula on them selects.
                let expectedOnSQLite = try sqlite.matchingKeys(source, in: unfilteredOnSQLite[index % Self.sorts.count])
                #expect(fromSQLite == expectedOnSQLite, "#\(index) \(source): SQLite disagrees with the evaluator")
                if !source.contains("RECORD_ID") {
                    #expect(actual == fromSQLite, "#\(index) \(source): the stores disagree")
                }
                if !plan.needsResidual && !plan.verdictMayBeUnknown {
                    // SQL decides every row: a store that may evaluate none in Swift answers the same.
                    let strict = try await postgres.keys(filter: source, sort: sort, pageSize: pageSize, lister: exact)
                    #expect(strict == expected, "#\(index) \(source): differs with no row evaluated in Swift")
                }
                let pushed = plan.condition != nil || plan.verdict != nil
                if pushed && !plan.needsResidual { fullyPushed += 1 } else if pushed { partlyPushed += 1 }
                if !expected.isEmpty && expected.count < rows.count { nonTrivial += 1 }
            }
            #expect(fullyPushed > formulas.count / 2, "fully pushed: \(fullyPushed) of \(formulas.count)")
            #expect(partlyPushed > 5, "partly pushed: \(partlyPushed)")
            #expect(nonTrivial > formulas.count / 2, "non-trivial: \(nonTrivial)")
        }
        withExtendedLifetime(directory) {}
    }

    /// Cells only a direct write could leave (a value of the wrong shape for its field, a `false`
    /// checkbox, `null`), and text PostgreSQL cannot parse as `jsonb` (a NUL): the pushed-down list
    /// agrees with the one that evaluates every row, and the unparseable row still answers.
    @Test func wrongShapesAndUnparseableCellsAgreeWithTheEvaluator() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let table = try await FilterTable.make(store, rows: FilterTable.rows(count: 60, seed: 99))
            let id = { (name: String) in table.schema.fieldsByName[name]?.id.rawValue ?? "" }
            let odd: [(key: String, cells: String)] = [
                ("k0001", #"{"\#(id("Key"))":"k0001","\#(id("Score"))":"3","\#(id("Done"))":1,"\#(id("Name"))":5}"#),
                (
                    "k0002",
                    #"{"\#(id("Key"))":"k0002","\#(id("Done"))":false,"\#(id("Name"))":null,"\#(id("Score"))":true}"#
                ),
                ("k0003", #"{"\#(id("Key"))":"k0003","\#(id("Tags"))":[],"\#(id("Name"))":"","\#(id("Score"))":-0}"#),
                (
                    "k0004",
                    #"{"\#(id("Key"))":"k0004","\#(id("Tags"))":"a","\#(id("Notes"))":["x"],"\#(id("Amount"))":1e2}"#
                ),
                ("k0005", #"{"\#(id("Key"))":"k0005","\#(id("Name"))":"nul\u0000byte","\#(id("Score"))":7}"#),
                ("k0006", #"{"\#(id("Key"))":"k0006","\#(id("Name"))":"back\\u0000slash","\#(id("Score"))":8}"#),
                ("k0007", #"{"\#(id("Key"))":"k0007","\#(id("Tags"))":["",""],"\#(id("Links"))":[""]}"#),
            ]
            for (key, cells) in odd {
                let recordID = try #require(table.ids[key])
                try await store.database.write { transaction in
                    try await transaction.execute("UPDATE records SET fields = \(cells) WHERE id = \(recordID)")
                }
            }
            let rowByRow: FilterTable.Lister = { schema, plan, user in
                try await store.listRecordParts(schema: schema, plan: plan, user: user, pushdown: false)
            }
            for source in filterCorpus + ["FIND('nul', {Name}) = 1", "LEN({Name}) = 8", "{Name} = 'nul\u{0}byte'"] {
                let expected = try await table.keys(filter: source, sort: [], pageSize: 100, lister: rowByRow)
                let actual = try await table.keys(filter: source, sort: [], pageSize: 9)
                #expect(actual == expected, "\(source)")
            }
            // The unparseable row is found by a filter SQL decides for every other row.
            #expect(try await table.keys(filter: "{Score} = 7", sort: [], pageSize: 10).contains("k0005"))
            #expect(try await table.keys(filter: "{Score} = 8", sort: [], pageSize: 10).contains("k0006"))
        }
    }

    /// The proof of push-down: on a table larger than the scan limit, a filter SQL decides runs (it
    /// read past the limit and failed with `filterScanLimit` when every row was evaluated in Swift),
    /// and so does one whose SQL part narrows the rows to evaluate; one SQL cannot narrow still fails.
    @Test func pushedDownFiltersStayWithinTheScanLimit() async throws {
        try await PostgresCluster.withStores { stores in
            let store = PostgresStore(
                database: stores[0].database,
                logger: Harness.logger,
                limits: RequestLimits(maximumFilterScanRows: 40)
            )
            let rows = (0..<300).map { index in
                FilterTable.Row(
                    cells: [
                        "Key": .string(String(format: "k%04d", index)), "Score": .number(Double(index % 100)),
                        "Name": .string(index % 2 == 0 ? "Émile \(index)" : "alice \(index)"),
                    ],
                    links: []
                )
            }
            let table = try await FilterTable.make(store, rows: rows)
            let rowByRow: FilterTable.Lister = { schema, plan, user in
                try await store.listRecordParts(schema: schema, plan: plan, user: user, pushdown: false)
            }
            for source in [
                "{Score} = 7", "OR({Score} = 7, {Score} = 93)", "AND({Score} < 3, {Score} * 2 > 2)",
                "AND({Score} = 7, LOWER({Name}) = 'alice 7')", "OR(RECORD_ID() = '#1#', RECORD_ID() = '#2#')",
            ] {
                let keys = try await table.keys(
                    filter: source,
                    sort: [SortSpec(field: "Score", direction: .desc)],
                    pageSize: 2
                )
                #expect(!keys.isEmpty, "\(source)")
                #expect(
                    keys
                        == (try await table.evaluatorKeys(
                            filter: source,
                            sort: [SortSpec(field: "Score", direction: .desc)]
                        ))
                )
                await #expect(throws: StorageError.self, "\(source) without push-down") {
                    try await table.keys(filter: source, sort: [], pageSize: 2, lister: rowByRow)
                }
            }
            await #expect(throws: StorageError.self) {
                try await table.keys(filter: "{Score} * 1 = 7", sort: [], pageSize: 2)
            }
            // Non-ASCII text under LOWER is evaluated in Swift row by row: 150 rows, past the limit.
            await #expect(throws: StorageError.self) {
                try await table.keys(filter: "LOWER({Name}) = 'émile 8'", sort: [], pageSize: 2)
            }
        }
    }

    /// Hostile shapes: nesting as deep as the parser allows, thousands of alternatives, thousands of
    /// record ids. Each compiles fast within the budget, runs in PostgreSQL and agrees with the evaluator.
    @Test func hostileFormulasStayWithinTheBudget() async throws {
        let deepShapes: [(String, (Int) -> String)] = [
            ("parentheses", { String(repeating: "(", count: $0) + "{Score} > 3" + String(repeating: ")", count: $0) }),
            ("NOT", { String(repeating: "NOT(", count: $0) + "{Score} > 3" + String(repeating: ")", count: $0) }),
            (
                "AND",
                { String(repeating: "AND({Done},", count: $0) + "{Score} > 3" + String(repeating: ")", count: $0) }
            ),
            ("OR", { String(repeating: "OR({Done},", count: $0) + "{Score} > 3" + String(repeating: ")", count: $0) }),
            (
                "IF",
                { String(repeating: "IF(", count: $0) + "{Score} > 3" + String(repeating: ", {Done}, 0)", count: $0) }
            ),
            (
                "LOWER",
                { String(repeating: "LOWER(", count: $0) + "{Name}" + String(repeating: ")", count: $0) + " = 'alice'" }
            ),
            (
                "TRIM",
                { String(repeating: "TRIM(", count: $0) + "{Notes}" + String(repeating: ")", count: $0) + " != ''" }
            ),
            ("comparisons", { "{Done}" + String(repeating: " = TRUE()", count: $0) }),
        ]
        let big = Formula.Limits(maximumLength: 1 << 22, maximumTokens: 1 << 20)
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let table = try await FilterTable.make(store, rows: FilterTable.rows(count: 80, seed: 11))
            var sources: [(name: String, source: String)] = []
            for (name, shape) in deepShapes {
                var levels = Formula.Limits.defaultMaximumDepth
                while levels > 0, (try? Formula.parse(shape(levels))) == nil { levels -= 1 }
                #expect(levels > 100, "\(name) parsed only \(levels) deep")
                sources.append((name, shape(levels)))
            }
            sources.append(("wide OR", "OR(" + (0..<2_000).map { "{Score}=\($0 % 40)" }.joined(separator: ",") + ")"))
            sources.append(
                ("wide AND", "AND(" + (0..<2_000).map { "{Score}!=\(1000 + $0)" }.joined(separator: ",") + ")")
            )
            sources.append(("huge OR", "OR(" + (0..<20_000).map { "{Amount}=\($0)" }.joined(separator: ",") + ")"))
            sources.append(
                ("huge AND", "AND(" + (0..<20_000).map { "{Amount}!=\($0 + 1000)" }.joined(separator: ",") + ")")
            )
            let ids = (0..<5_000).map { $0 % 7 == 0 ? "#\($0 % 10)#" : RecordID.generate().rawValue }
            sources.append(("ids", "OR(" + ids.map { "RECORD_ID()='\($0)'" }.joined(separator: ",") + ")"))
            sources.append(
                (
                    "exponential LOWER",
                    String(repeating: "LOWER(", count: 60) + "{Name}" + String(repeating: ")", count: 60) + " = 'bob'"
                )
            )

            for (name, source) in sources {
                let formula = try Formula.parse(table.resolve(source), limits: big)
                var plan: PostgresFormulaSQLPlan?
                let elapsed = ContinuousClock().measure {
                    plan = PostgresFormulaSQL.compile(formula, fields: table.columns)
                }
                let compiled = try #require(plan)
                #expect(elapsed < .seconds(5), "\(name): \(elapsed)")
                for clause in [compiled.condition, compiled.verdict].compactMap({ $0 }) {
                    #expect(clause.sql.utf8.count <= PostgresFormulaSQL.Budget.maximumLength + 200, "\(name)")
                    #expect(clause.arguments.count <= PostgresFormulaSQL.Budget.maximumArguments, "\(name)")
                    #expect(clause.sql.filter { $0 == "?" }.count == clause.arguments.count, "\(name)")
                }
                if name == "ids" {
                    #expect(compiled.condition?.sql == "(r.id = ANY(?))" && compiled.condition?.arguments.count == 1)
                    #expect(compiled.verdict == nil && !compiled.needsResidual)
                }
                if name == "wide OR" { #expect(compiled.verdict != nil && !compiled.needsResidual, "\(name)") }
                let expected = try await table.evaluatorKeys(filter: source, sort: [], parseLimits: big)
                let actual = try await table.records(filter: source, sort: [], pageSize: 25, parseLimits: big).map(
                    FilterTable.key
                )
                #expect(actual == expected, "\(name)")
            }
        }
    }

    /// The plans of common filters: all in SQL, literals bound as parameters, ids in one array,
    /// unknown fields, bad ids and bad column names never written into SQL.
    @Test func plansOfCommonFilters() throws {
        let fields: [String: (id: String, type: FieldType)] = [
            "Name": ("fldAAAAAAAAAAAAAA", .singleLineText), "Score": ("fldBBBBBBBBBBBBBB", .number),
            "Done": ("fldCCCCCCCCCCCCCC", .checkbox), "Tags": ("fldDDDDDDDDDDDDDD", .multipleSelects),
            "Status": ("fldEEEEEEEEEEEEEE", .singleSelect), "Due": ("fldFFFFFFFFFFFFFF", .date),
        ]
        for source in [
            "{Score} > 3", "AND({Status} = 'Done', {Score} >= 2)", "{Name} = BLANK()",
            "OR({Status} = 'Todo', NOT({Done}))",
            "{Tags} = BLANK()", "{Score} = '3'", "FIND('li', {Name}) > 0", "LEN(TRIM({Name})) > 3", "{Done} = TRUE()",
            "IF({Score} > 10, {Done}, {Name} != 'x')", "{Due} < '2024-02-01'", "AND({Score}, NOT({Name} < 'M'))",
        ] {
            let plan = PostgresFormulaSQL.compile(try Formula.parse(source), fields: fields)
            #expect(plan.verdict != nil && !plan.needsResidual && !plan.verdictMayBeUnknown, "\(source)")
            #expect(plan.verdict?.readsFields == true, "\(source)")
        }
        // RECORD_ID lookups go straight into WHERE, where the primary key serves them.
        let ids = PostgresFormulaSQL.compile(
            try Formula.parse("OR(RECORD_ID()='recAAAAAAAAAAAAAA', 'recBBBBBBBBBBBBBB' = RECORD_ID())"),
            fields: fields
        )
        #expect(
            ids.condition
                == .init(
                    sql: "(r.id = ANY(?))",
                    arguments: [.texts(["recAAAAAAAAAAAAAA", "recBBBBBBBBBBBBBB"])],
                    readsFields: false
                )
        )
        #expect(ids.verdict == nil && !ids.needsResidual)
        // Literals are bound, never written into the SQL.
        let hostile = PostgresFormulaSQL.compile(
            try Formula.parse(#"{Name} = "x'); DROP TABLE records; --""#),
            fields: fields
        )
        let verdict = try #require(hostile.verdict)
        #expect(!verdict.sql.contains("DROP") && verdict.arguments.contains(.text("x'); DROP TABLE records; --")))
        var bindings = PostgresBindings()
        bindings.append("table")
        let rendered = verdict.render(into: &bindings)
        #expect(rendered.contains("$2") && !rendered.contains("?") && bindings.count == 2)
        // Partial: the pushable conjunct in SQL, the rest in Swift; an OR SQL cannot fully decide stays in Swift.
        let partial = PostgresFormulaSQL.compile(
            try Formula.parse("AND({Status} = 'Done', IS_BEFORE({Due}, '2024-03-01'))"),
            fields: fields
        )
        #expect(partial.verdict != nil && partial.needsResidual)
        #expect(
            PostgresFormulaSQL.compile(try Formula.parse("OR({Status} = 'Done', {Score} * 2 > 5)"), fields: fields)
                == .residualOnly
        )
        // Constants need no SQL; a false one selects nothing.
        #expect(
            PostgresFormulaSQL.compile(try Formula.parse("1 = 1"), fields: fields)
                == PostgresFormulaSQLPlan(
                    condition: nil,
                    verdict: nil,
                    needsResidual: false,
                    verdictMayBeUnknown: false
                )
        )
        #expect(
            PostgresFormulaSQL.compile(try Formula.parse("AND({Score}, 0)"), fields: fields).condition?.sql == "FALSE"
        )
        // Non-ASCII case mapping and NUL literals are left to Swift, per row or whole.
        #expect(
            PostgresFormulaSQL.compile(try Formula.parse("LOWER({Name}) = 'émile'"), fields: fields).verdictMayBeUnknown
        )
        #expect(PostgresFormulaSQL.compile(try Formula.parse("SEARCH('É', {Name})"), fields: fields) == .residualOnly)
        #expect(PostgresFormulaSQL.compile(try Formula.parse("{Name} = 'a\u{0}'"), fields: fields).verdictMayBeUnknown)
        // Unknown fields, malformed ids and column names are never written into SQL.
        #expect(PostgresFormulaSQL.compile(try Formula.parse("{Nope} = 1"), fields: fields) == .residualOnly)
        #expect(
            PostgresFormulaSQL.compile(
                try Formula.parse("{Name} = 'x'"),
                fields: ["Name": ("fld' OR 1=1 --", .singleLineText)]
            )
                == .residualOnly
        )
        #expect(
            PostgresFormulaSQL.compile(try Formula.parse("{Score} > 1"), fields: fields, fieldsJSON: "j; DROP")
                == .residualOnly
        )
    }
}
