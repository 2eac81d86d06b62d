// libFuzzer target: the formula parser, validator, evaluator and the SQL compiler, with SQLite as the
// judge of the SQL. Built and run by scripts/fuzz.sh, not by `swift build`.
import Foundation
import GRDB
import PyAirtableModels

private let fieldTypes: [(String, FieldType)] = [
    ("Name", .singleLineText), ("Notes", .multilineText), ("Status", .singleSelect), ("Score", .number),
    ("Done", .checkbox), ("Tags", .multipleSelects), ("Due", .date), ("When", .dateTime),
]

private let fields: [String: (id: String, type: FieldType)] = Dictionary(
    uniqueKeysWithValues: fieldTypes.enumerated().map { index, field in
        (field.0, (id: "fld" + String(repeating: "A", count: 13) + String(index), type: field.1))
    }
)

private let sampleRows: [(id: String, values: [String: FieldValue])] = [
    (
        "recAAAAAAAAAAAAAA1",
        ["Name": "alice", "Score": 3, "Done": true, "Tags": .strings(["a", "b"]), "Due": "2024-02-01"]
    ),
    ("recAAAAAAAAAAAAAA2", ["Name": "Émile", "Notes": "  x  ", "Score": -1.5, "Status": "Done"]),
    ("recAAAAAAAAAAAAAA3", ["Name": "", "Score": 0, "Done": false, "When": "2024-01-01T10:00:00.000Z"]),
    ("recAAAAAAAAAAAAAA4", [:]),
]

private let database: DatabaseQueue = {
    do {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(
                sql: "CREATE TABLE records (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, fields TEXT NOT NULL)"
            )
            for row in sampleRows {
                var stored: [String: FieldValue] = [:]
                for (name, value) in row.values { stored[fields[name]!.id] = value }
                let json = String(decoding: try JSONCoding.encoder.encode(stored), as: UTF8.self)
                try db.execute(sql: "INSERT INTO records (id, fields) VALUES (?, ?)", arguments: [row.id, json])
            }
        }
        return queue
    } catch {
        fatalError("fixture: \(error)")
    }
}()

private func height(_ expression: FormulaExpression) -> Int {
    var deepest = 0
    var stack: [(FormulaExpression, Int)] = [(expression, 1)]
    while let (node, depth) = stack.popLast() {
        deepest = max(deepest, depth)
        for child in node.children { stack.append((child, depth + 1)) }
    }
    return deepest
}

@_cdecl("LLVMFuzzerTestOneInput")
public func formulaFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let source = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let formula: Formula
    do {
        formula = try Formula.parse(source)
    } catch {
        precondition(error.position >= 0 && error.position <= max(source.count, Formula.Limits.default.maximumLength))
        return 0
    }
    precondition(height(formula.expression) <= Formula.Limits.default.maximumDepth, "too deep: \(source)")
    let types = fields.mapValues(\.type)
    _ = try? formula.validate(fieldTypes: types)
    var expected: Set<String> = []
    for row in sampleRows where formula.matches(FormulaRecordValues(recordID: row.id, values: row.values, types: types))
    {
        expected.insert(row.id)
    }
    let plan = FormulaSQL.compile(formula, fields: fields)
    guard let sql = plan.sql else { return 0 }
    precondition(sql.utf8.count <= FormulaSQL.Budget.maximumLength)
    precondition(sql.filter { $0 == "?" }.count == plan.arguments.count, "placeholders: \(sql)")
    let selected: Set<String>
    do {
        selected = try database.read { db in
            try Set(String.fetchAll(db, sql: "SELECT id FROM records WHERE \(sql)", arguments: plan.statementArguments))
        }
    } catch {
        fatalError("SQLite refused the compiled SQL of \(source.debugDescription): \(error)")
    }
    // SQL selects a superset of the matching rows, and exactly them when nothing is left to Swift.
    precondition(selected.isSuperset(of: expected), "SQL dropped a match: \(source.debugDescription) \(sql)")
    if !plan.needsResidual {
        precondition(selected == expected, "SQL and the evaluator disagree: \(source.debugDescription) \(sql)")
    }
    return 0
}
