import Foundation
import GRDB
import PyAirtableModels
import Testing

#if canImport(ReferenceServer)
@testable import ReferenceServer
#else
@testable import FormulaSQL
#endif

/// SplitMix64: a small seeded generator, so every run draws the same records and formulas.
private struct FormulaSQLTestRandom: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func pick<T>(_ options: [T]) -> T {
        options[Int.random(in: 0..<options.count, using: &self)]
    }

    mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &self) < probability
    }
}

/// A formula string literal for `text`.
private func formulaSQLQuote(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
}

/// A `records` table in a temporary SQLite file, filled with random records over a fixed schema.
private struct FormulaSQLFixture {
    static let schema: [(name: String, type: FieldType)] = [
        ("Name", .singleLineText), ("Notes", .multilineText), ("Status", .singleSelect), ("Email", .email),
        ("Score", .number), ("Amount", .number), ("Done", .checkbox), ("Tags", .multipleSelects),
        ("Links", .multipleRecordLinks), ("Due", .date), ("When", .dateTime), ("Files", .multipleAttachments),
    ]

    let database: DatabaseQueue
    let directory: URL
    let fields: [String: (id: String, type: FieldType)]
    let types: [String: FieldType]
    /// The records as the Swift evaluator sees them, in insertion order.
    let records: [FormulaRecordValues]
    /// The stored rows read back with `FormulaSQL.record`, by id, for the residual pass (decoded once:
    /// decoding is the slow part, and a row decodes the same way every time).
    let storedRecords: [String: FormulaRecordValues]

    init(recordCount: Int, seed: UInt64) throws {
        var random = FormulaSQLTestRandom(state: seed)
        var fields: [String: (id: String, type: FieldType)] = [:]
        var types: [String: FieldType] = [:]
        for (name, type) in Self.schema {
            fields[name] = (FieldID.generate(using: &random).rawValue, type)
            types[name] = type
        }
        self.fields = fields
        self.types = types

        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "formula-sql-\(UUID().uuidString)",
            isDirectory: true
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        database = try DatabaseQueue(path: directory.appendingPathComponent("records.sqlite").path)

        var records: [FormulaRecordValues] = []
        var rows: [(id: String, json: String)] = []
        for _ in 0..<recordCount {
            let id = RecordID.generate(using: &random).rawValue
            var values: [String: FieldValue] = [:]
            var stored: [String: FieldValue] = [:]
            for (name, type) in Self.schema {
                guard let value = Self.randomValue(for: type, using: &random), let field = fields[name] else {
                    continue
                }
                values[name] = value
                stored[field.id] = value
            }
            let json = String(decoding: try JSONCoding.encoder.encode(stored), as: UTF8.self)
            records.append(FormulaRecordValues(recordID: id, values: values, types: types))
            rows.append((id, json))
        }
        self.records = records
        try database.write { db in
            try db.execute(
                sql:
                    "CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, fields TEXT NOT NULL)"
            )
            for row in rows {
                try db.execute(sql: "INSERT INTO records (id, fields) VALUES (?, ?)", arguments: [row.id, row.json])
            }
        }
        let storedRows = try database.read { db in try Row.fetchAll(db, sql: "SELECT id, fields FROM records") }
        var storedRecords: [String: FormulaRecordValues] = [:]
        for row in storedRows {
            let id: String = row["id"]
            storedRecords[id] = FormulaSQL.record(id: id, fieldsJSON: row["fields"], fields: fields)
        }
        self.storedRecords = storedRecords
    }

    func removeFiles() {
        try? FileManager.default.removeItem(at: directory)
    }

    static let texts = [
        "Alice", "alice", "ALICE", "Bob", "bob smith", "Émile", "Zoë", "a b", "  padded  ", "O'Brien", "5", "3.5",
        "-2", "0", "\u{212A}elvin", "straße", "a, b", "Done", "done", "Todo", "x", "\ttab", "back\\slash", "日本",
    ]

    static func randomValue(for type: FieldType, using random: inout FormulaSQLTestRandom) -> FieldValue? {
        if random.chance(0.2) { return nil }
        if random.chance(0.05) { return .null }
        // Now and then a value of the wrong shape for the type.
        if random.chance(0.06) {
            return random.pick([
                .string("3"), .string(""), .number(1), .number(0), .bool(true), .bool(false), .strings(["a"]),
                .strings([]),
            ])
        }
        switch type {
        case .number:
            return .number(
                random.pick([0, -0.0, 1, 2, 3, 3.5, -1, -2.25, 10, 100, 0.1, 0.3, 1_000_000, 2.5, 42, -100])
            )
        case .checkbox:
            return .bool(random.chance(0.5))
        case .multipleSelects, .multipleRecordLinks:
            let pool = ["a", "b", "A", "É", "", "c d", "Done"]
            return .strings((0..<Int.random(in: 0...3, using: &random)).map { _ in random.pick(pool) })
        case .date:
            return .string(
                random.pick(["2024-01-05", "2023-12-31", "2024-06-01", "2024-01-05T10:00:00.000Z", "not a date", ""])
            )
        case .dateTime:
            return .string(
                random.pick([
                    "2024-01-05T10:00:00.000Z", "2024-01-04T23:59:59Z", "2024-01-05T00:00:00+02:00",
                    "2024-06-01T12:00:00Z", "",
                ])
            )
        case .multipleAttachments:
            return .attachments(
                (0..<Int.random(in: 0...2, using: &random)).map { index in
                    Attachment(id: FileID.generate(using: &random), filename: index == 0 ? "report.pdf" : nil)
                }
            )
        case .email:
            return .string(random.pick(["a@example.com", "Bob@Example.com", "", "x"]))
        case .singleSelect:
            return .string(random.pick(["Done", "Todo", "In progress", "done", ""]))
        default:
            return .string(random.pick(texts + [""]))
        }
    }

    /// The ids the plan selects, after the residual pass when the plan asks for one.
    func ids(matching plan: FormulaSQLPlan, formula: Formula) throws -> Set<String> {
        let sql = "SELECT id FROM records" + (plan.sql.map { " WHERE \($0)" } ?? "")
        let selected = try database.read { db in try String.fetchAll(db, sql: sql, arguments: plan.statementArguments) }
        guard plan.needsResidual else { return Set(selected) }
        return Set(selected.filter { id in storedRecords[id].map(formula.matches) ?? false })
    }

    /// The ids the Swift evaluator accepts.
    func expectedIDs(_ formula: Formula) -> Set<String> {
        Set(records.filter { formula.matches($0) }.map(\.recordID))
    }
}

/// Draws random formulas from the supported grammar over ``FormulaSQLFixture/schema``.
private struct FormulaSQLFormulaGenerator {
    var random: FormulaSQLTestRandom
    let recordIDs: [String]

    static let textFields = ["Name", "Notes", "Status", "Email", "Due", "When"]
    static let numberFields = ["Score", "Amount"]
    static let allFields = FormulaSQLFixture.schema.map(\.name)
    static let operators = ["=", "!=", "<>", "<", "<=", ">", ">="]

    mutating func field(_ names: [String] = allFields) -> String { "{\(random.pick(names))}" }

    mutating func constant() -> String {
        switch Int.random(in: 0..<10, using: &random) {
        case 0...2:
            return random.pick([
                "0", "1", "2", "3", "3.5", "10", "0.1", "100", "42", "2.5", "-1", "-2.25", "- 0", "1000000",
            ])
        case 3...6:
            let pool = [
                "", "Alice", "alice", "a", "b", "A", "3", "3.5", " 2 ", "abc", "Done", "done", "Todo", "2024-01-05",
                "2024-06-01T12:00:00Z", "a, b", "É", "\u{212A}", "O'Brien", "x", "1e1", "0",
            ]
            return formulaSQLQuote(random.pick(pool))
        case 7:
            return random.pick(["BLANK()", "TRUE()", "FALSE()", "''"])
        case 8:
            return random.pick([
                "DATETIME_PARSE('2024-01-05')", "DATETIME_PARSE('2024-01-05T10:00:00Z')", "(1 + 2)", "'x' & 'y'",
                "1 / 0", "LOWER('ABC')",
            ])
        default:
            return formulaSQLQuote(random.pick(recordIDs))
        }
    }

    mutating func value(_ depth: Int) -> String {
        switch Int.random(in: 0..<22, using: &random) {
        case 0...7: return field()
        case 8: return "RECORD_ID()"
        case 9: return "\(random.pick(["LOWER", "UPPER", "TRIM"]))(\(field(Self.textFields + ["Tags", "Score"])))"
        case 10: return "LEN(\(random.chance(0.8) ? field(Self.textFields) : field()))"
        case 11:
            let start = random.chance(0.3) ? ", \(random.pick(["1", "2", "4", "0", "-1", "99", "'2'"]))" : ""
            let haystack = random.chance(0.2) ? "LOWER(\(field(Self.textFields)))" : field(Self.textFields + ["Tags"])
            return
                "\(random.pick(["FIND", "SEARCH"]))(\(formulaSQLQuote(random.pick(["a", "A", "o", "b", "", "É", "li", "done", "-", "\u{212A}"]))), \(haystack)\(start))"
        case 12: return "\(field(Self.numberFields)) \(random.pick(["+", "-", "*", "/"])) \(constant())"
        case 13: return "\(field()) & \(constant())"
        case 14: return depth > 0 ? "IF(\(predicate(depth - 1)), \(value(depth - 1)), \(value(depth - 1)))" : field()
        case 15: return "DATETIME_PARSE(\(field(["Due", "When"])))"
        case 16: return "-\(field(Self.numberFields))"
        case 17: return depth > 0 ? "(\(predicate(depth - 1)))" : field()
        case 18: return "UPPER(\(field(["Name"])))"
        default: return constant()
        }
    }

    mutating func predicate(_ depth: Int) -> String {
        let choice = Int.random(in: 0..<(depth > 0 ? 20 : 11), using: &random)
        switch choice {
        case 0...5:
            let op = random.pick(Self.operators)
            switch Int.random(in: 0..<6, using: &random) {
            case 0...2: return "\(value(depth)) \(op) \(constant())"
            case 3...4: return "\(constant()) \(op) \(value(depth))"
            default: return "\(value(depth)) \(op) \(value(depth))"
            }
        case 6: return "\(field()) = BLANK()"
        case 7: return value(depth)
        case 8: return "\(random.pick(["IS_BEFORE", "IS_AFTER"]))(\(field(["Due", "When", "Name"])), \(constant()))"
        case 9: return "RECORD_ID() \(random.pick(["=", "!="])) \(formulaSQLQuote(random.pick(recordIDs)))"
        case 10: return random.pick(["TRUE()", "FALSE()", "1", "''", "BLANK()"])
        case 11...13:
            let count = Int.random(in: 1...3, using: &random)
            let parts = (0..<count).map { _ in predicate(depth - 1) }
            return "\(random.pick(["AND", "OR", "and", "Or"]))(\(parts.joined(separator: ", ")))"
        case 14...15: return "NOT(\(predicate(depth - 1)))"
        case 16:
            let otherwise = random.chance(0.5) ? ", \(predicate(depth - 1))" : ""
            return "IF(\(predicate(depth - 1)), \(predicate(depth - 1))\(otherwise))"
        case 17:
            return
                "(\(predicate(depth - 1))) \(random.pick(["=", "!="])) \(random.pick(["TRUE()", "FALSE()", "0", "1", "'1'"]))"
        default: return "AND(\(predicate(depth - 1)), \(predicate(depth - 1)))"
        }
    }
}

@Suite("Formula SQL pushdown", .timeLimit(.minutes(15)))
struct FormulaSQLTests {
    @Test func randomFormulasAgreeWithTheEvaluator() throws {
        let fixture = try FormulaSQLFixture(recordCount: 300, seed: 0x5EED_F0F0)
        defer { fixture.removeFiles() }
        var generator = FormulaSQLFormulaGenerator(
            random: FormulaSQLTestRandom(state: 42),
            recordIDs: Array(fixture.records.prefix(5).map(\.recordID))
        )

        var fullyPushed = 0
        var partlyPushed = 0
        var nonTrivialResults = 0
        let formulaCount = 800
        for index in 0..<formulaCount {
            let source = generator.predicate(Int.random(in: 0...3, using: &generator.random))
            let formula = try Formula.parse(source)
            let plan = FormulaSQL.compile(formula, fields: fixture.fields)
            let expected = fixture.expectedIDs(formula)
            let actual = try fixture.ids(matching: plan, formula: formula)
            #expect(
                actual == expected,
                """
                formula #\(index): \(source)
                sql: \(plan.sql ?? "nil") \(plan.arguments) residual: \(plan.needsResidual)
                only in SQL: \(actual.subtracting(expected).count), missing from SQL: \(expected.subtracting(actual).count)
                """
            )
            if !plan.needsResidual { fullyPushed += 1 } else if plan.sql != nil { partlyPushed += 1 }
            if !expected.isEmpty && expected.count < fixture.records.count { nonTrivialResults += 1 }
        }
        // The generator must exercise both the pushed-down and the residual paths, on formulas that
        // actually split the records.
        #expect(fullyPushed > formulaCount / 3, "fully pushed: \(fullyPushed)")
        #expect(partlyPushed > formulaCount / 20, "partly pushed: \(partlyPushed)")
        #expect(nonTrivialResults > formulaCount / 3, "non-trivial results: \(nonTrivialResults)")
    }

    @Test func storedRowsReadBackAsTheOriginalRecords() throws {
        let fixture = try FormulaSQLFixture(recordCount: 200, seed: 7)
        defer { fixture.removeFiles() }
        let rows = try fixture.database.read { db in
            try Row.fetchAll(db, sql: "SELECT id, fields FROM records ORDER BY seq")
        }
        #expect(rows.count == fixture.records.count)
        for (row, original) in zip(rows, fixture.records) {
            let record = FormulaSQL.record(id: row["id"], fieldsJSON: row["fields"], fields: fixture.fields)
            #expect(record.recordID == original.recordID)
            #expect(record.types == original.types)
            // The wire form cannot tell an empty attachment list from an empty string list; both are
            // blank, so compare what formulas see.
            for (name, type) in FormulaSQLFixture.schema {
                #expect(
                    FormulaValue(field: record.value(ofField: name), type: type)
                        == FormulaValue(field: original.value(ofField: name), type: type),
                    "\(name): \(String(describing: record.value(ofField: name))) vs \(String(describing: original.value(ofField: name)))"
                )
            }
        }
    }

    @Test(
        "Common filters push down completely",
        arguments: [
            "{Score} > 3", "AND({Status} = 'Done', {Score} >= 2)", "{Name} = BLANK()", "{Name} = ''",
            "OR({Status} = 'Todo', NOT({Done}))", "RECORD_ID() = 'rec0123456789abcd'", "{Tags} = BLANK()",
            "{Score} = '3'", "FIND('li', {Name}) > 0", "LEN(TRIM({Notes})) > 3", "{Done}", "{Done} = TRUE()",
            "IF({Score} > 10, {Done}, {Name} != 'x')", "{Amount} <= -1", "{Email} != BLANK()",
            "AND({Score}, NOT({Name} < 'M'))", "{Score} = 'abc'", "{Due} < '2024-02-01'",
        ]
    )
    func commonFiltersArePushedDown(source: String) throws {
        let fixture = try FormulaSQLFixture(recordCount: 120, seed: 99)
        defer { fixture.removeFiles() }
        let formula = try Formula.parse(source)
        let plan = FormulaSQL.compile(formula, fields: fixture.fields)
        #expect(plan.needsResidual == false, "\(source): \(plan.sql ?? "nil")")
        #expect(try fixture.ids(matching: plan, formula: formula) == fixture.expectedIDs(formula))
    }

    @Test func partialPushdown() throws {
        let fixture = try FormulaSQLFixture(recordCount: 120, seed: 5)
        defer { fixture.removeFiles() }
        // AND: the pushable conjunct goes to SQL, the rest to the residual pass.
        let and = try Formula.parse("AND({Status} = 'Done', IS_BEFORE({Due}, '2024-03-01'))")
        let andPlan = FormulaSQL.compile(and, fields: fixture.fields)
        #expect(andPlan.sql != nil)
        #expect(andPlan.needsResidual)
        #expect(try fixture.ids(matching: andPlan, formula: and) == fixture.expectedIDs(and))
        // OR with a part SQL cannot decide: nothing is filtered in SQL.
        let or = try Formula.parse("OR({Status} = 'Done', {Score} * 2 > 5)")
        let orPlan = FormulaSQL.compile(or, fields: fixture.fields)
        #expect(orPlan.sql == nil)
        #expect(orPlan.needsResidual)
        #expect(try fixture.ids(matching: orPlan, formula: or) == fixture.expectedIDs(or))
        // Constant formulas need no SQL at all.
        #expect(
            FormulaSQL.compile(try Formula.parse("1 = 1"), fields: fixture.fields)
                == FormulaSQLPlan(sql: nil, arguments: [], needsResidual: false)
        )
        #expect(FormulaSQL.compile(try Formula.parse("AND({Score}, 0)"), fields: fixture.fields).sql == "0")
        // Unknown fields and bad ids are never written into SQL.
        let unknown = FormulaSQL.compile(try Formula.parse("{Nope} = 1"), fields: fixture.fields)
        #expect(unknown.sql == nil && unknown.needsResidual)
        let badID = FormulaSQL.compile(
            try Formula.parse("{Name} = 'x'"),
            fields: ["Name": (id: "fld' OR 1=1 --", type: .singleLineText)]
        )
        #expect(badID.sql == nil && badID.needsResidual)
        let badColumn = FormulaSQL.compile(
            try Formula.parse("{Score} > 1"),
            fields: fixture.fields,
            fieldsColumn: "fields; DROP"
        )
        #expect(badColumn.sql == nil && badColumn.needsResidual)
    }

    @Test func literalsAreBoundNotInterpolated() throws {
        let fixture = try FormulaSQLFixture(recordCount: 10, seed: 1)
        defer { fixture.removeFiles() }
        let formula = try Formula.parse(#"{Name} = "x'); DROP TABLE records; --""#)
        let plan = FormulaSQL.compile(formula, fields: fixture.fields)
        let sql = try #require(plan.sql)
        #expect(!sql.contains("DROP"))
        #expect(plan.arguments.contains("x'); DROP TABLE records; --".databaseValue))
        #expect(sql.filter { $0 == "?" }.count == plan.arguments.count)
        #expect(try fixture.ids(matching: plan, formula: formula).isEmpty)
        #expect(try fixture.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records") } == 10)
    }

    @Test func nonASCIITextFallsBackToTheResidualPass() throws {
        let fixture = try FormulaSQLFixture(recordCount: 200, seed: 3)
        defer { fixture.removeFiles() }
        for source in [
            "LOWER({Name}) = 'émile'", "SEARCH('k', {Name})", "UPPER({Name}) = 'ALICE'", "SEARCH('É', {Name})",
        ] {
            let formula = try Formula.parse(source)
            let plan = FormulaSQL.compile(formula, fields: fixture.fields)
            #expect(plan.needsResidual, "\(source)")
            #expect(try fixture.ids(matching: plan, formula: formula) == fixture.expectedIDs(formula), "\(source)")
        }
    }
}

@Suite("Formula SQL within SQLite's limits", .timeLimit(.minutes(15)))
struct FormulaSQLLimitTests {
    /// Shapes nested as deep as the parser allows; each runs in SQLite (no "Expression tree is too
    /// large") and agrees with the evaluator.
    static let deepShapes: [(String, @Sendable (Int) -> String)] = [
        ("parentheses", { String(repeating: "(", count: $0) + "{Score} > 3" + String(repeating: ")", count: $0) }),
        ("NOT", { String(repeating: "NOT(", count: $0) + "{Score} > 3" + String(repeating: ")", count: $0) }),
        ("AND", { String(repeating: "AND({Done},", count: $0) + "{Score} > 3" + String(repeating: ")", count: $0) }),
        ("OR", { String(repeating: "OR({Done},", count: $0) + "{Score} > 3" + String(repeating: ")", count: $0) }),
        ("IF", { String(repeating: "IF(", count: $0) + "{Score} > 3" + String(repeating: ", {Done}, 0)", count: $0) }),
        (
            "LOWER",
            { String(repeating: "LOWER(", count: $0) + "{Name}" + String(repeating: ")", count: $0) + " = 'alice'" }
        ),
        ("TRIM", { String(repeating: "TRIM(", count: $0) + "{Notes}" + String(repeating: ")", count: $0) + " != ''" }),
        ("chain", { "{Score}" + String(repeating: " + 1", count: $0) + " > 3" }),
        ("comparisons", { "{Done}" + String(repeating: " = TRUE()", count: $0) }),
    ]

    @Test func formulasAtTheDepthLimitRunInSQLite() throws {
        let fixture = try FormulaSQLFixture(recordCount: 150, seed: 11)
        defer { fixture.removeFiles() }
        for (name, shape) in Self.deepShapes {
            // The deepest that parses: one level below the limit leaves room for the comparison.
            var levels = Formula.Limits.defaultMaximumDepth
            var formula: Formula?
            while formula == nil && levels > 0 {
                formula = try? Formula.parse(shape(levels))
                levels -= 1
            }
            let parsed = try #require(formula, "\(name)")
            #expect(levels > 100, "\(name) parsed only \(levels) deep")
            let plan = FormulaSQL.compile(parsed, fields: fixture.fields)
            if let sql = plan.sql { #expect(sql.utf8.count <= FormulaSQL.Budget.maximumLength, "\(name)") }
            #expect(try fixture.ids(matching: plan, formula: parsed) == fixture.expectedIDs(parsed), "\(name)")
        }
    }

    @Test func wideAlternativesStayInSQLite() throws {
        let fixture = try FormulaSQLFixture(recordCount: 150, seed: 12)
        defer { fixture.removeFiles() }
        // SQLite nests `a OR b OR …` one level per operand and refuses past 1000: the compiler pairs them.
        let alternatives = (0..<2_000).map { "{Score}=\($0 % 40)" }.joined(separator: ",")
        let or = try Formula.parse("OR(\(alternatives))")
        let plan = FormulaSQL.compile(or, fields: fixture.fields)
        #expect(plan.sql != nil)
        #expect(!plan.needsResidual)
        #expect(try fixture.ids(matching: plan, formula: or) == fixture.expectedIDs(or))
        let conjuncts = (0..<2_000).map { "{Score}!=\(1000 + $0)" }.joined(separator: ",")
        let and = try Formula.parse("AND(\(conjuncts))")
        let andPlan = FormulaSQL.compile(and, fields: fixture.fields)
        #expect(andPlan.sql != nil)
        #expect(try fixture.ids(matching: andPlan, formula: and) == fixture.expectedIDs(and))
    }

    @Test("OR(RECORD_ID()='rec…', …) is one IN list of bound ids, either way round; a mixed OR is not")
    func recordIDAlternativesAreOneInList() throws {
        let fixture = try FormulaSQLFixture(recordCount: 300, seed: 21)
        defer { fixture.removeFiles() }
        let wanted = fixture.records.map(\.recordID).enumerated().filter { $0.offset % 3 == 0 }.map(\.element)
        let terms = wanted.enumerated().map { index, id in
            index.isMultiple(of: 2) ? "RECORD_ID()='\(id)'" : "'\(id)' = RECORD_ID()"
        }
        let formula = try Formula.parse("OR(\(terms.joined(separator: ",")), RECORD_ID()='recNOPE0000000000')")
        let plan = FormulaSQL.compile(formula, fields: fixture.fields)
        let sql = try #require(plan.sql)
        #expect(sql.hasPrefix("(id IN (") && !sql.contains("OR"), "\(sql.prefix(80))")
        #expect(!plan.needsResidual)
        #expect(plan.arguments.count == wanted.count + 1)
        #expect(try fixture.ids(matching: plan, formula: formula) == Set(wanted))
        #expect(fixture.expectedIDs(formula) == Set(wanted))
        // A term of another kind keeps the general OR.
        let mixed = try Formula.parse("OR(RECORD_ID()='\(wanted[0])', {Score} > 30)")
        let mixedPlan = FormulaSQL.compile(mixed, fields: fixture.fields)
        #expect(mixedPlan.sql?.contains("(id IN (") == false)
        #expect(try fixture.ids(matching: mixedPlan, formula: mixed) == fixture.expectedIDs(mixed))
    }

    @Test func repeatedOperandsCannotGrowTheSQLExponentially() throws {
        let fixture = try FormulaSQLFixture(recordCount: 50, seed: 13)
        defer { fixture.removeFiles() }
        // Each LOWER writes its operand three times: 60 levels would be 3^60 copies without the budget.
        let source = String(repeating: "LOWER(", count: 60) + "{Name}" + String(repeating: ")", count: 60) + " = 'bob'"
        let formula = try Formula.parse(source)
        let clock = ContinuousClock()
        var plan: FormulaSQLPlan?
        let elapsed = clock.measure { plan = FormulaSQL.compile(formula, fields: fixture.fields) }
        let compiled = try #require(plan)
        #expect(elapsed < .seconds(5), "\(elapsed)")
        #expect(compiled.needsResidual)
        #expect((compiled.sql?.utf8.count ?? 0) <= FormulaSQL.Budget.maximumLength)
        #expect(try fixture.ids(matching: compiled, formula: formula) == fixture.expectedIDs(formula))
    }
}

@Suite("Formula SQL: inputs the fuzzer found", .timeLimit(.minutes(15)))
struct FormulaSQLFuzzFindingsTests {
    /// Found by scripts/fuzz.sh: a NUL inside a string literal. SQLite saw the literal cut at the NUL,
    /// so `{Status} != 'Done\0…'` dropped the records whose Status is Done.
    @Test func nulInALiteralIsLeftToTheResidualPass() throws {
        let fixture = try FormulaSQLFixture(recordCount: 150, seed: 21)
        defer { fixture.removeFiles() }
        for source in ["AND({Status} != 'Done\u{0}\"', 6&0)", "{Name} = 'alice\u{0}x'", "FIND('a\u{0}', {Name}) > 0"] {
            let formula = try Formula.parse(source)
            let plan = FormulaSQL.compile(formula, fields: fixture.fields)
            #expect(plan.needsResidual, "\(source.debugDescription)")
            #expect(try fixture.ids(matching: plan, formula: formula) == fixture.expectedIDs(formula))
        }
    }
}
