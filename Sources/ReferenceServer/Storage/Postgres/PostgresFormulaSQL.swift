import Foundation
import PostgresNIO
import PyAirtableModels

/// What ``PostgresFormulaSQL/compile(_:fields:recordIDColumn:fieldsJSON:)`` makes of a formula.
///
/// Select the rows with `WHERE <condition> AND (<verdict>) IS NOT FALSE` (leaving out what is `nil`).
/// Of the rows selected, a row passes the formula
/// - when ``needsResidual`` is true: if ``Formula/matches(_:)`` says so (SQL kept a superset);
/// - otherwise, when the verdict is NULL for it ("cannot tell in SQL"): if ``Formula/matches(_:)`` says so;
/// - otherwise: always (SQL decided exactly as the evaluator would).
///
/// Unlike ``FormulaSQLPlan``, "cannot tell" is per row: a filter that SQL decides for all but a few rows
/// (fields PostgreSQL cannot parse, non-ASCII text under `LOWER`) costs a Swift evaluation for those few
/// rows only; the rows SQL decides are neither evaluated again in Swift nor counted against the scan limit.
struct PostgresFormulaSQLPlan: Sendable, Hashable {
    /// Exact and never NULL for every row, reading no field: it can go straight into `WHERE`, where
    /// an index may serve it (`r.id = ANY($2)` for `OR(RECORD_ID()='rec…', …)`).
    var condition: PostgresFormulaSQL.Clause?
    /// TRUE or FALSE where SQL can tell, NULL for the rows that must be evaluated in Swift.
    var verdict: PostgresFormulaSQL.Clause?
    /// Whether every selected row must still be evaluated in Swift (part of the formula is not in SQL).
    var needsResidual: Bool
    /// Whether the verdict may be NULL for ordinary rows, not only for the rare rows its guards set
    /// aside (fields PostgreSQL cannot parse, a database not in UTF-8): reading rows in larger chunks pays.
    var verdictMayBeUnknown: Bool

    /// A plan that pushes nothing down: every row is read and evaluated in Swift.
    static let residualOnly = PostgresFormulaSQLPlan(
        condition: nil,
        verdict: nil,
        needsResidual: true,
        verdictMayBeUnknown: false
    )
}

/// Translates formulas into PostgreSQL predicates over the `records` table, whose `fields` column holds
/// a JSON object keyed by field id (`{"fldAbc…": "Alice", "fldXyz…": 42}`; an absent key is blank),
/// parsed once per row into `jsonb` by the query (see ``fieldsJSONExpression(_:)``).
///
/// ```swift
/// let plan = PostgresFormulaSQL.compile(try Formula.parse("{Score} > 3"), fields: columns)
/// var binds = PostgresBindings()
/// let verdict = plan.verdict?.render(into: &binds)  // "(CASE WHEN fx.j IS NULL THEN NULL ELSE … > $1 … END)"
/// ```
///
/// The rules are ``FormulaSQL``'s: only what provably agrees with the Swift evaluator (``Formula``'s
/// documented semantics) is pushed down, everything else is left to the Swift evaluation, and every
/// fragment uses three-valued logic on purpose: TRUE, FALSE, and NULL for "cannot tell in SQL", which
/// `AND`, `OR` and `NOT` combine correctly (Kleene logic).
///
/// What pushes down (as in ``FormulaSQL``):
/// - comparisons (`= != <> < <= > >=`) between a pushable value and a constant (any sub-formula
///   without fields or `RECORD_ID()`, folded at compile time), including blank handling and the
///   text→number coercion of constants;
/// - `AND`, `OR`, `NOT`, `IF` (as a condition), `TRUE()`, `FALSE()`, and the truthiness of a pushable value;
/// - pushable values: fields of type number, checkbox, the text types (`singleLineText`,
///   `multilineText`, `singleSelect`, `email`, `url`, `date`, `dateTime`), `multipleSelects` and
///   `multipleRecordLinks` (blank tests and truthiness only), `RECORD_ID()`, and over text values
///   `LEN`, `TRIM`, `FIND(constant, value, [constant])`, plus `LOWER`, `UPPER` and
///   `SEARCH(constant, value, [constant])` for ASCII text (other rows get a NULL verdict: PostgreSQL's
///   case mapping depends on the collation, so it is used under `COLLATE "C"`, which maps ASCII only);
/// - `OR(RECORD_ID()='rec…', …)` becomes `r.id = ANY($n)` with one array argument;
/// - a top-level `AND` is split: its pushable conjuncts go to SQL, the rest to the Swift evaluation.
///
/// What does not: arithmetic and `&` on fields, `IS_BEFORE`, `IS_AFTER`, `DATETIME_PARSE` on fields,
/// comparisons between two fields, text fields against numbers, attachments, unknown field types.
///
/// PostgreSQL specifics:
/// - numbers are compared as `float8`, the evaluator's `Double` (a `jsonb` number converts to the
///   same `Double` as Swift's decoder reads from the same digits); a cast is only reached under a
///   `CASE` that checked the JSON type, since `AND`/`OR` do not promise an evaluation order;
/// - text is compared under `COLLATE "C"`, byte order, which for UTF-8 is the evaluator's code-point
///   order; equality is exact in any collation PostgreSQL accepts as a database default;
/// - text can hold no NUL: a literal with one is left to Swift (a bound value would be refused);
/// - a row whose stored JSON PostgreSQL cannot parse (`\u0000` in a string: `jsonb` refuses it) has a
///   NULL parsed value, and every verdict reading fields is NULL for it;
/// - `LEN`, `FIND`, `SEARCH`, `LOWER`, `UPPER` and text ordering count or compare characters of the
///   database's encoding: their verdicts are NULL unless the database is UTF-8.
///
/// Literals are bound as parameters (the SQL holds a `?` for each, numbered `$n` by
/// ``Clause/render(into:)``); field ids are checked to be `fld` + 14 base-62 characters before they are
/// written into SQL, and column names to be plain identifiers (otherwise nothing is pushed down).
enum PostgresFormulaSQL {
    /// A compiled SQL expression and the values of its placeholders.
    struct Clause: Sendable, Hashable {
        /// SQL text with a `?` for each of ``arguments`` (no other `?` occurs: no `jsonb` `?` operator
        /// is used, and literals are never written into the text).
        var sql: String
        /// The values of the placeholders, in order.
        var arguments: [Argument]
        /// Whether the SQL reads the parsed fields column.
        var readsFields: Bool

        /// The SQL with `$n` placeholders, its arguments appended to `bindings` (so `$n` continue the
        /// numbering of whatever query the clause joins).
        func render(into bindings: inout PostgresBindings) -> String {
            let segments = sql.split(separator: "?", omittingEmptySubsequences: false)
            var output = String(segments[0])
            output.reserveCapacity(sql.utf8.count + arguments.count * 6)
            for (argument, segment) in zip(arguments, segments.dropFirst()) {
                argument.append(to: &bindings)
                output += "$\(bindings.count)"
                output += segment
            }
            return output
        }
    }

    /// A bound value.
    enum Argument: Sendable, Hashable {
        /// `text`.
        case text(String)
        /// `float8`.
        case number(Double)
        /// `int4` (positions and lengths).
        case integer(Int32)
        /// `text[]`.
        case texts([String])

        /// Appends the value to `bindings` with its PostgreSQL type.
        func append(to bindings: inout PostgresBindings) {
            switch self {
            case .text(let text): bindings.append(text)
            case .number(let number): bindings.append(number)
            case .integer(let integer): bindings.append(integer)
            case .texts(let texts): bindings.append(texts)
            }
        }
    }

    /// The row's fields parsed: `fields::jsonb`, or NULL for the rows PostgreSQL would refuse to
    /// parse. The query computes it once per row, in a lateral subquery the planner keeps (`OFFSET 0`):
    /// pulled up, every reference would parse the JSON again.
    ///
    /// `jsonb` refuses the escape `\u0000`, which ``RecordJSON`` writes for a NUL in text; the test looks for
    /// the six characters, so text holding a literal backslash followed by `u0000` is set aside too,
    /// harmlessly (its rows are evaluated in Swift).
    /// - Parameter fieldsColumn: the row's stored fields (a plain identifier such as `r.fields`).
    static func fieldsJSONExpression(_ fieldsColumn: String) -> String {
        "CASE WHEN strpos(\(fieldsColumn), E'\\\\u0000') = 0 THEN \(fieldsColumn)::jsonb END"
    }

    /// Compiles `formula` for the `records` table.
    /// - Parameters:
    ///   - fields: the table's fields: field name → (field id, type).
    ///   - recordIDColumn: the column holding the record id.
    ///   - fieldsJSON: the row's fields parsed as `jsonb` (see ``fieldsJSONExpression(_:)``), NULL when
    ///     they could not be parsed.
    /// - Returns: what can run in PostgreSQL, and what is left to the Swift evaluation.
    static func compile(
        _ formula: Formula,
        fields: [String: (id: String, type: FieldType)],
        recordIDColumn: String = "r.id",
        fieldsJSON: String = "fx.j"
    ) -> PostgresFormulaSQLPlan {
        guard FormulaSQL.isPlainIdentifier(recordIDColumn), FormulaSQL.isPlainIdentifier(fieldsJSON) else {
            return .residualOnly
        }
        let compiler = Compiler(fields: fields, recordIDColumn: recordIDColumn, fieldsJSON: fieldsJSON)
        var exact: [Fragment] = []
        var uncertain: [Fragment] = []
        var total = Budget.Usage()
        var needsResidual = false
        var mayBeUnknown = false
        for conjunct in FormulaSQL.topLevelConjuncts(formula.expression) {
            switch compiler.predicate(conjunct) {
            case .constant(false):
                return PostgresFormulaSQLPlan(
                    condition: Clause(sql: "FALSE", arguments: [], readsFields: false),
                    verdict: nil,
                    needsResidual: false,
                    verdictMayBeUnknown: false
                )
            case .constant(true):
                continue
            case .constant(nil):
                needsResidual = true
            case .sql(let fragment, let nullable):
                // Past the budget a conjunct is left to Swift: the SQL still selects a superset.
                guard total.add(fragment) else {
                    needsResidual = true
                    continue
                }
                if nullable || fragment.readsFields || fragment.dependsOnEncoding {
                    uncertain.append(fragment)
                    mayBeUnknown = mayBeUnknown || nullable
                } else {
                    exact.append(fragment)
                }
            }
        }
        var verdict: Clause?
        if !uncertain.isEmpty {
            let predicate = Fragment.balanced(uncertain, keyword: "AND")
            var guards: [Fragment] = []
            if predicate.readsFields { guards.append(Fragment(stringLiteral: "\(fieldsJSON) IS NULL")) }
            if predicate.dependsOnEncoding { guards.append("(SELECT current_setting('server_encoding')) <> 'UTF8'") }
            let guarded: Fragment =
                guards.isEmpty
                ? predicate
                : "(CASE WHEN \(Fragment.balanced(guards, keyword: "OR")) THEN NULL ELSE \(predicate) END)"
            verdict = guarded.clause
        }
        return PostgresFormulaSQLPlan(
            condition: exact.isEmpty ? nil : Fragment.balanced(exact, keyword: "AND").clause,
            verdict: verdict,
            needsResidual: needsResidual,
            verdictMayBeUnknown: mayBeUnknown
        )
    }

    /// How much SQL one filter may become. Past it, a part of the formula is left to the Swift
    /// evaluation instead of being pushed down.
    ///
    /// PostgreSQL has no parser stack as small as SQLite's, but it recurses on expression depth when
    /// it parses, plans and runs a statement (refusing past `max_stack_depth`, 2 MB by default), binds
    /// at most 65,535 parameters, and some translations repeat an operand (`LOWER` writes its text
    /// three times), so nested ones would grow the SQL exponentially. Parenthesis nesting stands for
    /// depth; 64 levels stay far from the stack limit and the arguments leave room for the page query's.
    enum Budget {
        /// The longest SQL text of one filter, in UTF-8 bytes.
        static let maximumLength = 1 << 20
        /// The deepest parenthesis nesting of one filter's SQL.
        static let maximumNesting = 64
        /// The most arguments of one filter's SQL.
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
            /// Each fragment counts 7 bytes more, for the `(… AND …)` that will join it.
            fileprivate mutating func add(_ fragment: Fragment) -> Bool {
                guard Budget.fits(fragment), length + fragment.sql.utf8.count + 7 <= Budget.maximumLength,
                    arguments + fragment.arguments.count <= Budget.maximumArguments
                else { return false }
                length += fragment.sql.utf8.count + 7
                arguments += fragment.arguments.count
                return true
            }
        }
    }
}

extension PostgresFormulaSQL {
    // MARK: - SQL fragments

    /// SQL text with the values of its `?` placeholders, built by interpolation:
    /// `"\(fragment)"` splices another fragment, `"\(bind: argument)"` adds a placeholder. What a
    /// fragment depends on (the parsed fields, the database's encoding) follows it into every fragment
    /// it is spliced into.
    fileprivate struct Fragment: ExpressibleByStringInterpolation {
        var sql: String
        var arguments: [Argument]
        /// The deepest parenthesis nesting in `sql` (see ``PostgresFormulaSQL/Budget``). Literals written
        /// here hold no parentheses inside quotes, so counting them all is exact.
        var nesting: Int
        /// Whether the SQL reads the parsed fields (NULL for rows PostgreSQL cannot parse).
        var readsFields = false
        /// Whether the SQL counts or orders characters, which is the evaluator's only in UTF-8.
        var dependsOnEncoding = false

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
            self.readsFields = stringInterpolation.readsFields
            self.dependsOnEncoding = stringInterpolation.dependsOnEncoding
        }

        /// The fragment as a plan's clause.
        var clause: Clause { Clause(sql: sql, arguments: arguments, readsFields: readsFields) }

        /// This fragment, marked as counting or ordering characters.
        var encodingDependent: Fragment {
            var copy = self
            copy.dependsOnEncoding = true
            return copy
        }

        /// Parenthesis depth, followed as text is appended.
        struct Nesting {
            /// The parentheses open at the end of the text so far.
            var open = 0
            /// The deepest nesting so far.
            var deepest = 0

            /// Follows the parentheses of SQL text written here.
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

            /// Counts in a spliced fragment, whose parentheses are balanced.
            mutating func append(_ fragment: Fragment) {
                deepest = max(deepest, open + fragment.nesting)
            }
        }

        /// A fragment being built: its text, arguments, nesting and what it depends on so far.
        struct Interpolation: StringInterpolationProtocol {
            var sql = ""
            var arguments: [Argument] = []
            var nesting = Nesting()
            var readsFields = false
            var dependsOnEncoding = false

            init(literalCapacity: Int, interpolationCount: Int) {
                sql.reserveCapacity(literalCapacity)
            }

            /// Writes SQL text (never a literal value).
            mutating func appendLiteral(_ literal: String) {
                sql += literal
                nesting.scan(literal)
            }

            /// Splices `fragment`, with its arguments and what it depends on.
            mutating func appendInterpolation(_ fragment: Fragment) {
                sql += fragment.sql
                arguments += fragment.arguments
                nesting.append(fragment)
                readsFields = readsFields || fragment.readsFields
                dependsOnEncoding = dependsOnEncoding || fragment.dependsOnEncoding
            }

            /// Writes a placeholder for `argument`.
            mutating func appendInterpolation(bind argument: Argument) {
                sql += "?"
                arguments.append(argument)
            }
        }

        /// `fragments` joined with `keyword` (`AND`, `OR`) as a balanced tree of parenthesised pairs, so
        /// a long list nests only log₂(count) deep.
        static func balanced(_ fragments: [Fragment], keyword: String) -> Fragment {
            guard fragments.count > 1 else { return fragments.first ?? "TRUE" }
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

    /// A boolean in SQL: a constant known at compile time (`nil` meaning "cannot tell in SQL"), or a
    /// `boolean` expression giving TRUE, FALSE, or (only when `nullable`) NULL for "cannot tell".
    fileprivate enum Predicate {
        case constant(Bool?)
        case sql(Fragment, nullable: Bool)

        /// The predicate as SQL, constants included.
        var fragment: Fragment {
            switch self {
            case .constant(true): "TRUE"
            case .constant(false): "FALSE"
            case .constant(nil): "NULL::boolean"
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

    /// A per-row value in SQL: blank when `blank` is TRUE (`nil` = never blank), else a value of `kind`
    /// given by `value`. When `nullable`, SQL may be unable to tell the value for some rows: `value` is
    /// then NULL, and so is `blank` unless it is TRUE or FALSE for sure (`blank` is NULL only where
    /// `value` is NULL). `value` may be NULL where `blank` is TRUE. The kind is certain for every row:
    /// it is the kind the Swift evaluator gives whenever the value is not blank.
    fileprivate struct Term {
        /// What a non-blank value is, in SQL and for the evaluator.
        enum Kind {
            /// `value` is a `float8`.
            case number
            /// `value` is `text` (possibly empty for computed text, never for fields).
            case text
            /// `value` is a `boolean`.
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

    /// Compiles the parts of one formula for one table's fields.
    fileprivate struct Compiler {
        let fields: [String: (id: String, type: FieldType)]
        let recordIDColumn: String
        let fieldsJSON: String

        private static let constantRecord = FormulaRecordValues(recordID: "")

        // MARK: Predicates

        /// The predicate of `expression`, or "cannot tell in SQL" when its SQL would be past the budget.
        func predicate(_ expression: FormulaExpression) -> Predicate {
            let predicate = unbudgetedPredicate(expression)
            if case .sql(let fragment, _) = predicate, !Budget.fits(fragment) { return .constant(nil) }
            return predicate
        }

        /// The predicate of `expression`, by its kind: a constant, a comparison, a logical function, or
        /// the truthiness of a value.
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
                if let ids = FormulaSQL.recordIDAlternatives(arguments) {
                    // `OR(RECORD_ID()='rec…', …)`, as clients fetch a set of records by id: one
                    // array argument the primary-key index serves, instead of every term on every row.
                    let column = Fragment(stringLiteral: recordIDColumn)
                    return .sql("(\(column) = ANY(\(bind: .texts(ids))))", nullable: false)
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
                    // `CASE WHEN NULL` takes the ELSE branch: a condition SQL cannot tell must stay NULL.
                    let fragment: Fragment =
                        nullable
                        ? "(CASE WHEN \(c) IS NULL THEN NULL::boolean WHEN \(c) THEN \(then.fragment) ELSE \(otherwise.fragment) END)"
                        : "(CASE WHEN \(c) THEN \(then.fragment) ELSE \(otherwise.fragment) END)"
                    return .sql(fragment, nullable: nullable || then.isNullable || otherwise.isNullable)
                }
            default:
                guard case .term(let term)? = operand(expression) else { return .constant(nil) }
                return truthiness(term)
            }
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
            // is left whole to Swift. `x AND NULL` still rules rows out where `x` is false.
            if sawUnknown && absorbing { return .constant(nil) }
            if sawUnknown {
                fragments.append("NULL::boolean")
                nullable = true
            }
            if fragments.count == 1, let only = fragments.first { return .sql(only, nullable: nullable) }
            return .sql(Fragment.balanced(fragments, keyword: keyword), nullable: nullable)
        }

        /// Whether a term's value counts as true (``FormulaValue/isTruthy``): blank, 0, `''` and false do not.
        private func truthiness(_ term: Term) -> Predicate {
            let valueTest: Fragment
            switch term.kind {
            case .number: valueTest = "(\(term.value) <> 0)"
            case .bool: valueTest = term.value
            case .text: valueTest = "(\(term.value) <> '')"
            case .list: valueTest = "TRUE"
            }
            guard let blank = term.blank else { return .sql(valueTest, nullable: term.nullable) }
            if term.kind == .list { return .sql("(NOT \(blank))", nullable: false) }
            return .sql("(NOT \(blank) AND \(valueTest))", nullable: term.nullable)
        }

        // MARK: Comparisons

        /// A comparison of a term with a constant (either way round), or of two constants; others
        /// (two terms) cannot be told in SQL.
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

        /// `term op constant`: the blank case decided at compile time, the value case in SQL.
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
                valueFragment = "NULL::boolean"
                nullable = true
            }
            guard let blank = term.blank else { return .sql(valueFragment, nullable: nullable) }
            if whenBlank {
                return .sql("(\(blank) OR \(valueFragment))", nullable: nullable)
            }
            return .sql("(NOT \(blank) AND \(valueFragment))", nullable: nullable)
        }

        /// `value op constant` for a term's non-blank value, under ``FormulaValue/compare(_:_:_:)``'s rules.
        private func compareValue(_ term: Term, _ op: FormulaOperator, _ constant: FormulaValue) -> ValueComparison {
            let sqlOperator = Self.sqlOperator(op)
            switch term.kind {
            case .number, .bool:
                // Rule 2 (a date operand) or rule 3 (numbers) of FormulaValue.compare.
                if case .date = constant { return .constant(op == .notEqual) }
                guard let number = constant.numericValue else { return .constant(op == .notEqual) }
                let value: Fragment = term.kind == .bool ? "(\(term.value))::int::float8" : term.value
                return .sql("(\(value) \(sqlOperator) \(bind: .number(number)))")
            case .text:
                // Rule 4 (text) applies only when the constant is text or blank.
                let text: String
                switch constant {
                case .blank: text = ""
                // PostgreSQL text cannot hold NUL: the value would be refused.
                case .text(let value) where value.utf8.contains(0): return .unknown
                case .text(let value): text = value
                default: return .unknown
                }
                // Byte order under "C" is code-point order in UTF-8 only; equality is exact in any encoding.
                let comparison: Fragment = "(\(term.value) COLLATE \"C\" \(sqlOperator) \(bind: .text(text)))"
                return .sql(op == .equal || op == .notEqual ? comparison : comparison.encodingDependent)
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

        /// The SQL spelling of a comparison operator.
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

        /// The operand of `expression`: a folded constant, a field, `RECORD_ID()`, a boolean, or a text
        /// function's result; `nil` for anything else.
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

        /// A predicate used as a value (`({Score} > 3) = TRUE()`): a boolean term, never blank.
        private func booleanTerm(_ predicate: Predicate) -> Operand? {
            switch predicate {
            case .constant(let value?): .constant(.bool(value))
            case .constant(nil): nil
            case .sql(let fragment, let nullable):
                .term(Term(kind: .bool, blank: nil, value: fragment, nullable: nullable))
            }
        }

        /// A field's term, reading the parsed fields as ``FormulaValue/init(field:type:)`` reads the
        /// decoded cell: a JSON value of the wrong type for the field is blank.
        private func field(_ name: String) -> Term? {
            guard let field = fields[name], FieldID.isValid(field.id) else { return nil }
            /// SQL reading the parsed fields (marked so that the verdict guards against unparsed rows).
            func reading(_ sql: String) -> Fragment {
                var fragment = Fragment(stringLiteral: sql)
                fragment.readsFields = true
                return fragment
            }
            let cell = "(\(fieldsJSON) -> '\(field.id)')"
            let type = "jsonb_typeof\(cell)"
            switch field.type {
            case .number:
                return Term(
                    kind: .number,
                    blank: reading("(\(type) IS DISTINCT FROM 'number')"),
                    // Cast only under the type test: a string would make `::float8` fail the query.
                    value: reading("(CASE WHEN \(type) = 'number' THEN \(cell)::float8 END)"),
                    nullable: false
                )
            case .checkbox:
                return Term(
                    kind: .bool,
                    blank: reading("(\(type) IS DISTINCT FROM 'boolean')"),
                    value: reading("(\(cell) = 'true'::jsonb)"),
                    nullable: false
                )
            case .multipleSelects, .multipleRecordLinks:
                // Blank unless an array holding a non-empty string (the decoder reads an array with other
                // members as attachments, or not at all).
                let blank = reading(
                    "(\(type) IS DISTINCT FROM 'array' OR NOT EXISTS (SELECT 1 FROM jsonb_array_elements("
                        + "CASE WHEN \(type) = 'array' THEN \(cell) END) AS element "
                        + "WHERE jsonb_typeof(element.value) = 'string' AND element.value <> '\"\"'::jsonb))"
                )
                return Term(kind: .list, blank: blank, value: "NULL::text", nullable: false)
            case let textType where textType.isText:
                return Term(
                    kind: .text,
                    blank: reading("(\(type) IS DISTINCT FROM 'string' OR \(cell) = '\"\"'::jsonb)"),
                    value: reading("(\(fieldsJSON) ->> '\(field.id)')"),
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

        /// The term of `expression` when it is text, else `nil` (text functions push down on text only).
        private func textTerm(_ expression: FormulaExpression?) -> Term? {
            guard let expression, case .term(let term)? = operand(expression), term.kind == .text else { return nil }
            return term
        }

        /// Whether a text value holds a character outside ASCII (in UTF-8: more bytes than characters).
        private func isNotASCII(_ value: Fragment) -> Fragment {
            "(octet_length(\(value)) <> char_length(\(value)))"
        }

        /// `text` case-mapped by PostgreSQL, which agrees with Swift's full Unicode mapping on ASCII only
        /// (under `COLLATE "C"`, whatever the database's locale: a Turkish one maps `I` to `ı`); NULL
        /// for other text.
        private func asciiCaseMapped(_ text: Fragment, function: Fragment) -> Fragment {
            let mapped: Fragment =
                "(CASE WHEN \(isNotASCII(text)) THEN NULL ELSE \(function)(\(text) COLLATE \"C\") END)"
            return mapped.encodingDependent
        }

        /// The value of a text function over a text term: `LOWER`, `UPPER`, `TRIM`, `LEN`, `FIND`, `SEARCH`.
        private func call(_ function: FormulaFunction, _ arguments: [FormulaExpression]) -> Operand? {
            switch function {
            case .lower, .upper:
                guard let term = textTerm(arguments.first) else { return nil }
                return .term(
                    Term(
                        kind: .text,
                        blank: nil,
                        value: asciiCaseMapped(textValue(term), function: function == .lower ? "lower" : "upper"),
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
                        value: "btrim(\(textValue(term)), \(bind: .text(characters)))",
                        nullable: term.nullable
                    )
                )
            case .len:
                guard let term = textTerm(arguments.first) else { return nil }
                let length: Fragment = "(char_length(\(textValue(term)))::float8)"
                return .term(
                    Term(kind: .number, blank: nil, value: length.encodingDependent, nullable: term.nullable)
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
                // PostgreSQL text cannot hold NUL (see compareValue).
                guard !needle.utf8.contains(0), let first = Int32(exactly: start) else { return nil }
                var text = textValue(haystack)
                if function == .search {
                    // Case folding agrees with PostgreSQL's lower() under "C" on ASCII only.
                    guard needle.utf8.allSatisfy({ $0 < 128 }) else { return nil }
                    needle = needle.lowercased()
                    text = asciiCaseMapped(text, function: "lower")
                }
                // Positions count characters; `(found)::int * …` keeps a NULL (cannot tell) NULL, as
                // `CASE WHEN found` would not.
                let position: Fragment
                if first == 1 {
                    position = "strpos(\(text), \(bind: .text(needle)))"
                } else {
                    let found: Fragment = "strpos(substr(\(text), \(bind: .integer(first))), \(bind: .text(needle)))"
                    position = "((\(found) > 0)::int * (\(found) + \(bind: .integer(first - 1))))"
                }
                let value: Fragment = "(\(position)::float8)"
                let nullable = haystack.nullable || function == .search
                if function == .find {
                    return .term(Term(kind: .number, blank: nil, value: value.encodingDependent, nullable: nullable))
                }
                let notFound: Fragment = "(\(position) = 0)"
                return .term(
                    Term(
                        kind: .number,
                        blank: notFound.encodingDependent,
                        value: value.encodingDependent,
                        nullable: nullable
                    )
                )
            default:
                return nil
            }
        }
    }
}
