import Foundation
import GRDB
import PyAirtableModels

/// What ``FormulaSQL/compile(_:fields:recordIDColumn:fieldsColumn:)`` makes of a formula.
///
/// Select the rows with `WHERE <sql>` (or no condition when `sql` is `nil`); when `needsResidual` is
/// true, evaluate the formula in Swift (``Formula/matches(_:)``) on those rows and keep the matching
/// ones. The rows SQL returns are always a superset of the matching rows, and exactly them when
/// `needsResidual` is false.
struct FormulaSQLPlan: Sendable, Hashable {
    /// A boolean SQL expression over the `records` columns, or `nil` to select every row.
    var sql: String?
    /// The values of the `?` placeholders of `sql`, in order.
    var arguments: [DatabaseValue]
    /// Whether the selected rows must still be filtered with ``Formula/matches(_:)``.
    var needsResidual: Bool

    /// ``arguments`` as GRDB statement arguments.
    var statementArguments: StatementArguments { StatementArguments(arguments) }
}

/// Translates formulas into SQLite predicates over the `records` table, whose `fields` column holds a
/// JSON object keyed by field id (`{"fldAbc…": "Alice", "fldXyz…": 42}`); an absent key is blank.
///
/// Only what provably agrees with the Swift evaluator (``Formula``'s documented semantics) is pushed
/// down; the rest is left to a residual evaluation. Every SQL fragment uses SQLite's three-valued
/// logic on purpose: `1` true, `0` false, `NULL` "cannot tell in SQL", which `AND`, `OR` and `NOT`
/// combine correctly (Kleene logic), and the top level keeps `NULL` rows for the residual pass.
///
/// What pushes down:
/// - comparisons (`= != <> < <= > >=`) between a pushable value and a constant (any sub-formula
///   without fields or `RECORD_ID()`, folded at compile time, such as `'Done'`, `3`, `-2`, `BLANK()`,
///   `TRUE()`), including blank handling and the text→number coercion of constants;
/// - `AND`, `OR`, `NOT`, `IF` (as a condition), `TRUE()`, `FALSE()`, and the truthiness of a pushable value;
/// - pushable values: fields of type number, checkbox, the text types (`singleLineText`,
///   `multilineText`, `singleSelect`, `email`, `url`, `date`, `dateTime`), `multipleSelects` and
///   `multipleRecordLinks` (blank tests and truthiness only), `RECORD_ID()`, and over text values
///   `LEN`, `TRIM`, `FIND(constant, value, [constant])`, plus `LOWER`, `UPPER` and
///   `SEARCH(constant, value, [constant])` for ASCII text (other rows are left to the residual pass,
///   since SQLite's case mapping is ASCII-only);
/// - a top-level `AND` is split: its pushable conjuncts go to SQL, the rest to the residual pass.
///
/// What does not: arithmetic and `&` on fields, `IS_BEFORE`, `IS_AFTER`, `DATETIME_PARSE` on fields,
/// comparisons between two fields, text fields against numbers, attachments, unknown field types.
///
/// Literals are always bound as `?` arguments; field ids are checked to be `fld` + 14 base-62 characters
/// before they are written into a JSON path, and column names to be plain identifiers (otherwise
/// nothing is pushed down).
struct FormulaSQL {
    /// Compiles `formula` for the `records` table.
    /// - Parameters:
    ///   - fields: the table's fields: field name → (field id, type).
    ///   - recordIDColumn: the column holding the record id.
    ///   - fieldsColumn: the column holding the JSON object of field values keyed by field id.
    /// - Returns: the SQL predicate for the part of the formula that can run in SQLite, and whether the
    ///   rest still has to be evaluated in Swift on the rows SQL returns.
    static func compile(
        _ formula: Formula,
        fields: [String: (id: String, type: FieldType)],
        recordIDColumn: String = "id",
        fieldsColumn: String = "fields"
    ) -> FormulaSQLPlan {
        guard isPlainIdentifier(recordIDColumn), isPlainIdentifier(fieldsColumn) else {
            return FormulaSQLPlan(sql: nil, arguments: [], needsResidual: true)
        }
        let compiler = Compiler(fields: fields, recordIDColumn: recordIDColumn, fieldsColumn: fieldsColumn)
        var parts: [Fragment] = []
        var total = Budget.Usage()
        var needsResidual = false
        for conjunct in topLevelConjuncts(formula.expression) {
            switch compiler.predicate(conjunct) {
            case .constant(false):
                return FormulaSQLPlan(sql: "0", arguments: [], needsResidual: false)
            case .constant(true):
                continue
            case .constant(nil):
                needsResidual = true
            case .sql(let fragment, let nullable):
                let part: Fragment = nullable ? "IFNULL(\(fragment), 1)" : fragment
                // Past the budget a conjunct is left to the residual pass: the SQL still selects a superset.
                guard total.add(part) else {
                    needsResidual = true
                    continue
                }
                needsResidual = needsResidual || nullable
                parts.append(part)
            }
        }
        guard !parts.isEmpty else {
            return FormulaSQLPlan(sql: nil, arguments: [], needsResidual: needsResidual)
        }
        let combined = Fragment.balanced(parts, keyword: "AND")
        return FormulaSQLPlan(sql: combined.sql, arguments: combined.arguments, needsResidual: needsResidual)
    }

    /// The record the Swift evaluator sees for a stored row: `fieldsJSON` (keyed by field id) mapped
    /// to field names through `fields`. Keys of unknown fields and values that are not valid field
    /// values are left out (blank).
    static func record(
        id: String,
        fieldsJSON: String,
        fields: [String: (id: String, type: FieldType)]
    ) -> FormulaRecordValues {
        let stored = (try? JSONDecoder().decode([String: JSONValue].self, from: Data(fieldsJSON.utf8))) ?? [:]
        var values: [String: FieldValue] = [:]
        var types: [String: FieldType] = [:]
        for (name, field) in fields {
            types[name] = field.type
            if let json = stored[field.id], let value = fieldValue(json) {
                values[name] = value
            }
        }
        return FormulaRecordValues(recordID: id, values: values, types: types)
    }

    /// The ``FieldValue`` a JSON value decodes to (same precedence as `FieldValue`'s decoder), or `nil`.
    private static func fieldValue(_ json: JSONValue) -> FieldValue? {
        switch json {
        case .null: return .null
        case .bool(let bool): return .bool(bool)
        case .number(let number): return .number(number)
        case .string(let string): return .string(string)
        case .array(let items):
            let strings = items.compactMap(\.stringValue)
            if strings.count == items.count { return .strings(strings) }
            return (try? json.decode(as: [Attachment].self)).map(FieldValue.attachments)
        case .object: return nil
        }
    }

    /// How much SQL one filter may become. Past it, a part of the formula is left to the residual
    /// pass instead of being pushed down.
    ///
    /// These guard SQLite's own limits rather than the user: SQLite's parser refuses SQL nested past
    /// its stack ("parser stack overflow": with SQLite 3.40, 23 nested `(CASE WHEN …` or 31 nested
    /// `(a AND (…`), its expression trees past 1000 levels and statements with more than 32,766 `?`
    /// arguments; and some translations repeat an operand (`LOWER` writes its text three times), so
    /// nested ones would grow the SQL exponentially. Parenthesis nesting stands for parser depth; 16
    /// stays clear of the parser's stack with room for the rest of the page query.
    enum Budget {
        /// The longest SQL text of one filter, in UTF-8 bytes.
        static let maximumLength = 1 << 20
        /// The deepest parenthesis nesting of one filter's SQL.
        static let maximumNesting = 16
        /// The most `?` arguments of one filter's SQL.
        static let maximumArguments = 16_384

        /// Whether `fragment` alone is within the budget.
        fileprivate static func fits(_ fragment: Fragment) -> Bool {
            fragment.sql.utf8.count <= maximumLength && fragment.nesting <= maximumNesting
                && fragment.arguments.count <= maximumArguments
        }

        /// The running size of fragments that will be joined.
        struct Usage {
            var length = 0
            var arguments = 0

            /// Counts `fragment` in when the sum stays within the budget, and answers whether it did.
            fileprivate mutating func add(_ fragment: Fragment) -> Bool {
                guard Budget.fits(fragment), length + fragment.sql.utf8.count + 5 <= Budget.maximumLength,
                    arguments + fragment.arguments.count <= Budget.maximumArguments
                else { return false }
                length += fragment.sql.utf8.count + 5
                arguments += fragment.arguments.count
                return true
            }
        }
    }

    /// The conjuncts of a top-level `AND` (nested ones flattened), or the expression alone.
    static func topLevelConjuncts(_ expression: FormulaExpression) -> [FormulaExpression] {
        if case .call(.and, let arguments) = expression.node {
            return arguments.flatMap(topLevelConjuncts)
        }
        return [expression]
    }

    /// The ids when every one of `arguments` is `RECORD_ID() = 'text'` (either way round), else `nil`;
    /// shared with ``PostgresFormulaSQL``.
    static func recordIDAlternatives(_ arguments: [FormulaExpression]) -> [String]? {
        Compiler.recordIDAlternatives(arguments)
    }

    /// Whether `name` may be written into SQL as a column reference: letters, digits, `_` and `.`.
    static func isPlainIdentifier(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(48...57).contains(first) else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || byte == 95
                || byte == 46
        }
    }
}

extension FormulaSQL {
    // MARK: - SQL fragments

    /// SQL text with the values of its `?` placeholders, built by interpolation:
    /// `"\(fragment)"` splices another fragment, `"\(bind: value)"` adds a placeholder.
    fileprivate struct Fragment: ExpressibleByStringInterpolation {
        var sql: String
        var arguments: [DatabaseValue]
        /// The deepest parenthesis nesting in `sql` (see ``FormulaSQL/Budget``). Literals written here
        /// hold no parentheses inside quotes, so counting them all is exact.
        var nesting: Int

        init(stringLiteral value: String) {
            self.sql = value
            self.arguments = []
            var nesting = Nesting()
            nesting.scan(value)
            self.nesting = nesting.deepest
        }

        init(stringInterpolation: Interpolation) {
            self.sql = stringInterpolation.sql
            self.arguments = stringInterpolation.arguments
            self.nesting = stringInterpolation.nesting.deepest
        }

        /// Parenthesis depth, followed as text is appended.
        struct Nesting {
            var open = 0
            var deepest = 0

            mutating func scan(_ literal: String) {
                for byte in literal.utf8 {
                    if byte == UInt8(ascii: "(") {
                        open += 1
                        deepest = max(deepest, open)
                    } else if byte == UInt8(ascii: ")") {
                        open -= 1
                    }
                }
            }

            mutating func append(_ fragment: Fragment) {
                deepest = max(deepest, open + fragment.nesting)
            }
        }

        struct Interpolation: StringInterpolationProtocol {
            var sql = ""
            var arguments: [DatabaseValue] = []
            var nesting = Nesting()

            init(literalCapacity: Int, interpolationCount: Int) {
                sql.reserveCapacity(literalCapacity)
            }

            mutating func appendLiteral(_ literal: String) {
                sql += literal
                nesting.scan(literal)
            }

            mutating func appendInterpolation(_ fragment: Fragment) {
                sql += fragment.sql
                arguments += fragment.arguments
                nesting.append(fragment)
            }

            mutating func appendInterpolation(bind value: some DatabaseValueConvertible) {
                sql += "?"
                arguments.append(value.databaseValue)
            }
        }

        /// `fragments` joined with `keyword` (`AND`, `OR`) as a balanced tree of parenthesised pairs.
        ///
        /// SQLite parses `a OR b OR c …` as a chain one level deeper per operand, and refuses chains past
        /// 1000; pairs nest only log₂(count) deep.
        static func balanced(_ fragments: [Fragment], keyword: String) -> Fragment {
            guard fragments.count > 1 else { return fragments.first ?? "" }
            var level = fragments
            while level.count > 1 {
                var next: [Fragment] = []
                next.reserveCapacity((level.count + 1) / 2)
                var index = 0
                while index + 1 < level.count {
                    next.append("(\(level[index]) \(Fragment(stringLiteral: keyword)) \(level[index + 1]))")
                    index += 2
                }
                if index < level.count { next.append(level[index]) }
                level = next
            }
            return level[0]
        }
    }

    /// A boolean in SQL: a constant known at compile time (`nil` meaning "cannot tell in SQL"), or an
    /// expression giving 1, 0, or (only when `nullable`) NULL for "cannot tell".
    fileprivate enum Predicate {
        case constant(Bool?)
        case sql(Fragment, nullable: Bool)

        /// The predicate as SQL, constants included.
        var fragment: Fragment {
            switch self {
            case .constant(true): "1"
            case .constant(false): "0"
            case .constant(nil): "NULL"
            case .sql(let fragment, _): fragment
            }
        }

        var isNullable: Bool {
            switch self {
            case .constant(let value): value == nil
            case .sql(_, let nullable): nullable
            }
        }
    }

    /// A per-row value in SQL: blank when `blank` is 1 (`nil` = never blank), else a value of `kind` given by
    /// `value`. When `nullable`, SQL may be unable to tell the value for some rows: `value` is then NULL, and
    /// so is `blank` unless it is 0 or 1 for sure (`blank` is NULL only where `value` is NULL). The kind is
    /// certain for every row: it is the kind the Swift evaluator gives whenever the value is not blank.
    fileprivate struct Term {
        enum Kind {
            /// `value` is an INTEGER or REAL.
            case number
            /// `value` is TEXT (possibly empty for computed text, never for fields).
            case text
            /// `value` is 1 or 0.
            case bool
            /// A non-empty list whose joined text is non-empty; `value` is unused.
            case list
        }

        var kind: Kind
        var blank: Fragment?
        var value: Fragment
        var nullable: Bool
    }

    /// A compiled operand of a comparison: a compile-time constant or a per-row term.
    fileprivate enum Operand {
        case constant(FormulaValue)
        case term(Term)
    }

    fileprivate struct Compiler {
        let fields: [String: (id: String, type: FieldType)]
        let recordIDColumn: String
        let fieldsColumn: String

        private static let constantRecord = FormulaRecordValues(recordID: "")

        // MARK: Predicates

        /// The predicate of `expression`, or "cannot tell in SQL" when its SQL would be past the budget.
        func predicate(_ expression: FormulaExpression) -> Predicate {
            let predicate = unbudgetedPredicate(expression)
            if case .sql(let fragment, _) = predicate, !Budget.fits(fragment) { return .constant(nil) }
            return predicate
        }

        private func unbudgetedPredicate(_ expression: FormulaExpression) -> Predicate {
            if expression.isConstant {
                return .constant(expression.evaluate(Self.constantRecord).isTruthy)
            }
            switch expression.node {
            case .binary(let op, let lhs, let rhs) where op.isComparison:
                return comparison(op, lhs, rhs)
            case .call(.and, let arguments):
                return combine(arguments, with: "AND", absorbing: false)
            case .call(.or, let arguments):
                if let ids = Self.recordIDAlternatives(arguments) {
                    // `OR(RECORD_ID()='rec…', …)`, as clients fetch a set of records by id: one
                    // primary-key lookup per id instead of every term tested on every row.
                    var list = Fragment(stringLiteral: "(\(recordIDColumn) IN (")
                    list.sql += Array(repeating: "?", count: ids.count).joined(separator: ", ") + "))"
                    list.arguments = ids.map(\.databaseValue)
                    return .sql(list, nullable: false)
                }
                return combine(arguments, with: "OR", absorbing: true)
            case .call(.not, let arguments):
                guard let argument = arguments.first else { return .constant(nil) }
                switch predicate(argument) {
                case .constant(let value): return .constant(value.map(!))
                case .sql(let fragment, let nullable): return .sql("(NOT \(fragment))", nullable: nullable)
                }
            case .call(.if, let arguments):
                guard arguments.count >= 2 else { return .constant(nil) }
                let condition = predicate(arguments[0])
                let then = predicate(arguments[1])
                let otherwise = arguments.count > 2 ? predicate(arguments[2]) : .constant(false)
                switch condition {
                case .constant(true): return then
                case .constant(false): return otherwise
                case .constant(nil):
                    if case .constant(let a?) = then, case .constant(let b?) = otherwise, a == b { return .constant(a) }
                    return .constant(nil)
                case .sql(let c, let nullable):
                    let fragment: Fragment =
                        nullable
                        ? "(CASE WHEN \(c) IS NULL THEN NULL WHEN \(c) THEN \(then.fragment) ELSE \(otherwise.fragment) END)"
                        : "(CASE WHEN \(c) THEN \(then.fragment) ELSE \(otherwise.fragment) END)"
                    return .sql(fragment, nullable: nullable || then.isNullable || otherwise.isNullable)
                }
            default:
                guard case .term(let term)? = operand(expression) else { return .constant(nil) }
                return truthiness(term)
            }
        }

        /// The ids when every one of `arguments` is `RECORD_ID() = 'text'` (either way round), else `nil`.
        /// Text equality in SQL is exact, as `IN` is; text holding NUL is left to the general path.
        static func recordIDAlternatives(_ arguments: [FormulaExpression]) -> [String]? {
            guard arguments.count > 1 else { return nil }
            var ids: [String] = []
            ids.reserveCapacity(arguments.count)
            for argument in arguments {
                guard case .binary(.equal, let lhs, let rhs) = argument.node else { return nil }
                switch (lhs.node, rhs.node) {
                case (.call(.recordID, _), .string(let id)), (.string(let id), .call(.recordID, _)):
                    guard !id.utf8.contains(0) else { return nil }
                    ids.append(id)
                default:
                    return nil
                }
            }
            return ids
        }

        /// `AND` (`absorbing` false: a false part decides) or `OR` (`absorbing` true: a true part decides).
        ///
        /// Parts are compiled one at a time against the budget, so a wide `AND`/`OR` never holds more
        /// SQL than the budget allows; a part past it counts as one SQL cannot decide.
        private func combine(_ arguments: [FormulaExpression], with keyword: String, absorbing: Bool) -> Predicate {
            var fragments: [Fragment] = []
            var usage = Budget.Usage()
            var nullable = false
            var sawUnknown = false
            for argument in arguments {
                switch predicate(argument) {
                case .constant(let value?):
                    if value == absorbing { return .constant(absorbing) }
                case .constant(nil):
                    sawUnknown = true
                case .sql(let fragment, let partNullable):
                    guard usage.add(fragment) else {
                        sawUnknown = true
                        continue
                    }
                    fragments.append(fragment)
                    nullable = nullable || partNullable
                }
            }
            if fragments.isEmpty { return .constant(sawUnknown ? nil : !absorbing) }
            // `x OR NULL` is never false, so it would filter nothing: an OR with a part SQL cannot decide
            // is left whole to the residual pass. `x AND NULL` still rules rows out where `x` is false.
            if sawUnknown && absorbing { return .constant(nil) }
            if sawUnknown {
                fragments.append("NULL")
                nullable = true
            }
            if fragments.count == 1, let only = fragments.first { return .sql(only, nullable: nullable) }
            return .sql(Fragment.balanced(fragments, keyword: keyword), nullable: nullable)
        }

        private func truthiness(_ term: Term) -> Predicate {
            let valueTest: Fragment
            switch term.kind {
            case .number, .bool: valueTest = "(\(term.value) <> 0)"
            case .text: valueTest = "(\(term.value) <> '')"
            case .list: valueTest = "1"
            }
            guard let blank = term.blank else { return .sql(valueTest, nullable: term.nullable) }
            if term.kind == .list { return .sql("(NOT \(blank))", nullable: false) }
            return .sql("(NOT \(blank) AND \(valueTest))", nullable: term.nullable)
        }

        // MARK: Comparisons

        private func comparison(_ op: FormulaOperator, _ lhs: FormulaExpression, _ rhs: FormulaExpression) -> Predicate
        {
            switch (operand(lhs), operand(rhs)) {
            case (.constant(let x)?, .constant(let y)?):
                return .constant(FormulaValue.compare(op, x, y))
            case (.term(let term)?, .constant(let constant)?):
                return compare(term, op, constant)
            case (.constant(let constant)?, .term(let term)?):
                return compare(term, op.mirrored, constant)
            default:
                return .constant(nil)
            }
        }

        /// The result of comparing a non-blank term value with a constant.
        private enum ValueComparison {
            case constant(Bool)
            case sql(Fragment)
            case unknown
        }

        private func compare(_ term: Term, _ op: FormulaOperator, _ constant: FormulaValue) -> Predicate {
            let whenBlank = FormulaValue.compare(op, .blank, constant)
            let whenValue = compareValue(term, op, constant)
            let valueFragment: Fragment
            let nullable: Bool
            switch whenValue {
            case .constant(let result):
                // Blank or not, every value of the term's kind gives the same answer: even rows SQL cannot
                // evaluate share it.
                guard let blank = term.blank, result != whenBlank else { return .constant(result) }
                return .sql(whenBlank ? blank : "(NOT \(blank))", nullable: term.nullable)
            case .sql(let fragment):
                valueFragment = fragment
                nullable = term.nullable
            case .unknown:
                valueFragment = "NULL"
                nullable = true
            }
            guard let blank = term.blank else { return .sql(valueFragment, nullable: nullable) }
            if whenBlank {
                return .sql("(\(blank) OR \(valueFragment))", nullable: nullable)
            }
            return .sql("(NOT \(blank) AND \(valueFragment))", nullable: nullable)
        }

        private func compareValue(_ term: Term, _ op: FormulaOperator, _ constant: FormulaValue) -> ValueComparison {
            let sqlOperator = Self.sqlOperator(op)
            switch term.kind {
            case .number, .bool:
                // Rule 2 (a date operand) or rule 3 (numbers) of FormulaValue.compare.
                if case .date = constant { return .constant(op == .notEqual) }
                guard let number = constant.numericValue else { return .constant(op == .notEqual) }
                return .sql("(\(term.value) \(sqlOperator) \(bind: number))")
            case .text:
                // Rule 4 (text) applies only when the constant is text or blank.
                switch constant {
                case .blank: return .sql("(\(term.value) \(sqlOperator) \(bind: ""))")
                // GRDB binds text up to its first NUL, so SQL would compare a shorter string.
                case .text(let text) where text.utf8.contains(0): return .unknown
                case .text(let text): return .sql("(\(term.value) \(sqlOperator) \(bind: text))")
                default: return .unknown
                }
            case .list:
                switch constant {
                case .blank, .text(""):
                    // A non-blank list joins to non-empty text, which compares with "" independently of its content.
                    return .constant(FormulaValue.compare(op, .list(["x"]), constant))
                case .number, .bool, .date:
                    return .constant(op == .notEqual)
                default:
                    return .unknown
                }
            }
        }

        private static func sqlOperator(_ op: FormulaOperator) -> Fragment {
            switch op {
            case .notEqual: "<>"
            default: Fragment(stringLiteral: op.rawValue)
            }
        }

        // MARK: Operands

        /// The operand of `expression`, or `nil` (not pushable) when its SQL would be past the budget.
        private func operand(_ expression: FormulaExpression) -> Operand? {
            let operand = unbudgetedOperand(expression)
            if case .term(let term)? = operand {
                guard Budget.fits(term.value), term.blank.map(Budget.fits) ?? true else { return nil }
            }
            return operand
        }

        private func unbudgetedOperand(_ expression: FormulaExpression) -> Operand? {
            if expression.isConstant {
                return .constant(expression.evaluate(Self.constantRecord))
            }
            switch expression.node {
            case .field(let name):
                return field(name).map(Operand.term)
            case .binary(let op, _, _) where op.isComparison:
                return booleanTerm(predicate(expression))
            case .call(.and, _), .call(.or, _), .call(.not, _):
                return booleanTerm(predicate(expression))
            case .call(.recordID, _):
                return .term(
                    Term(kind: .text, blank: nil, value: Fragment(stringLiteral: recordIDColumn), nullable: false)
                )
            case .call(let function, let arguments):
                return call(function, arguments)
            default:
                return nil
            }
        }

        private func booleanTerm(_ predicate: Predicate) -> Operand? {
            switch predicate {
            case .constant(let value?): .constant(.bool(value))
            case .constant(nil): nil
            case .sql(let fragment, let nullable):
                .term(Term(kind: .bool, blank: nil, value: fragment, nullable: nullable))
            }
        }

        private func field(_ name: String) -> Term? {
            guard let field = fields[name], FieldID.isValid(field.id) else { return nil }
            let path = "'$.\"\(field.id)\"'"
            let value = Fragment(stringLiteral: "json_extract(\(fieldsColumn), \(path))")
            let jsonType = Fragment(stringLiteral: "json_type(\(fieldsColumn), \(path))")
            switch field.type {
            case .number:
                return Term(
                    kind: .number,
                    blank: "(COALESCE(\(jsonType), '') NOT IN ('integer', 'real'))",
                    value: value,
                    nullable: false
                )
            case .checkbox:
                return Term(
                    kind: .bool,
                    blank: "(COALESCE(\(jsonType), '') NOT IN ('true', 'false'))",
                    value: value,
                    nullable: false
                )
            case .multipleSelects, .multipleRecordLinks:
                let blank = Fragment(
                    stringLiteral:
                        "(\(jsonType.sql) IS NOT 'array' OR NOT EXISTS (SELECT 1 FROM json_each(\(fieldsColumn), \(path)) "
                        + "WHERE json_each.type = 'text' AND json_each.value <> ''))"
                )
                return Term(kind: .list, blank: blank, value: "NULL", nullable: false)
            case let type where type.isText:
                return Term(
                    kind: .text,
                    blank: "(\(jsonType) IS NOT 'text' OR \(value) = '')",
                    value: value,
                    nullable: false
                )
            default:
                return nil
            }
        }

        /// A text term's value, with blank read as ''.
        private func textValue(_ term: Term) -> Fragment {
            guard let blank = term.blank else { return term.value }
            return "(CASE WHEN \(blank) THEN '' ELSE \(term.value) END)"
        }

        private func textTerm(_ expression: FormulaExpression?) -> Term? {
            guard let expression, case .term(let term)? = operand(expression), term.kind == .text else { return nil }
            return term
        }

        /// Whether a SQL text value is pure ASCII (its byte length equals its character length).
        private func isNotASCII(_ value: Fragment) -> Fragment {
            "length(CAST(\(value) AS BLOB)) <> length(\(value))"
        }

        private func call(_ function: FormulaFunction, _ arguments: [FormulaExpression]) -> Operand? {
            switch function {
            case .lower, .upper:
                guard let term = textTerm(arguments.first) else { return nil }
                let sqlFunction: Fragment = function == .lower ? "lower" : "upper"
                let text = textValue(term)
                return .term(
                    Term(
                        kind: .text,
                        blank: nil,
                        value: "(CASE WHEN \(isNotASCII(text)) THEN NULL ELSE \(sqlFunction)(\(text)) END)",
                        nullable: true
                    )
                )
            case .trim:
                guard let term = textTerm(arguments.first) else { return nil }
                let characters = String(String.UnicodeScalarView(FormulaValue.trimmedCharacters.sorted()))
                return .term(
                    Term(
                        kind: .text,
                        blank: nil,
                        value: "trim(\(textValue(term)), \(bind: characters))",
                        nullable: term.nullable
                    )
                )
            case .len:
                guard let term = textTerm(arguments.first) else { return nil }
                return .term(
                    Term(kind: .number, blank: nil, value: "length(\(textValue(term)))", nullable: term.nullable)
                )
            case .find, .search:
                guard arguments.count >= 2, arguments[0].isConstant, let haystack = textTerm(arguments[1]) else {
                    return nil
                }
                var start = 1
                if arguments.count > 2 {
                    guard arguments[2].isConstant else { return nil }
                    start = FormulaValue.searchStart(arguments[2].evaluate(Self.constantRecord))
                }
                var needle = arguments[0].evaluate(Self.constantRecord).textValue
                if needle.isEmpty { return .constant(function == .find ? .number(0) : .blank) }
                // A bound needle ends at its first NUL (see compareValue).
                guard !needle.utf8.contains(0) else { return nil }
                var text = textValue(haystack)
                if function == .search {
                    // Case folding agrees with SQLite's lower() on ASCII only.
                    guard needle.utf8.allSatisfy({ $0 < 128 }) else { return nil }
                    needle = needle.lowercased()
                    text = "(CASE WHEN \(isNotASCII(text)) THEN NULL ELSE lower(\(text)) END)"
                }
                let position: Fragment =
                    start == 1
                    ? "instr(\(text), \(bind: needle))"
                    : "((instr(substr(\(text), \(bind: start)), \(bind: needle)) > 0) * (instr(substr(\(text), \(bind: start)), \(bind: needle)) + \(bind: start - 1)))"
                let nullable = haystack.nullable || function == .search
                if function == .find {
                    return .term(Term(kind: .number, blank: nil, value: position, nullable: nullable))
                }
                return .term(Term(kind: .number, blank: "(\(position) = 0)", value: position, nullable: nullable))
            default:
                return nil
            }
        }
    }
}
