/// A parsed Airtable-style formula, as used by `GET /tables/{id}/records?filter=FORMULA`.
///
/// ```swift
/// let formula = try Formula.parse("AND({Status} = 'Done', {Score} >= 2)")
/// try formula.validate(fieldTypes: ["Status": .singleSelect, "Score": .number])
/// let keep = formula.matches(FormulaRecordValues(recordID: "rec…", values: ["Status": "Done", "Score": 3]))
/// ```
///
/// ## Language
/// - Field references `{Field Name}` (`\}` and `\\` escape inside), strings `'...'` or `"..."` with
///   backslash escapes, numbers `3`, `2.5`, `.5`, parentheses.
/// - Operators, loosest first: comparisons `= != <> < > <= >=`, then `&` (text concatenation), then
///   `+ -`, then `* /`, then unary `-`. All binary operators are left-associative.
/// - Functions, names case-insensitive: `AND(a, ...)`, `OR(a, ...)`, `NOT(a)`, `IF(c, a, [b])`, `TRUE()`,
///   `FALSE()`, `BLANK()`, `RECORD_ID()`, `FIND(needle, haystack, [start])`,
///   `SEARCH(needle, haystack, [start])`, `LOWER(s)`, `UPPER(s)`, `LEN(s)`, `TRIM(s)`, `IS_BEFORE(d1, d2)`,
///   `IS_AFTER(d1, d2)`, `DATETIME_PARSE(s, [format])`.
///
/// ## Semantics
/// Evaluation never fails; it follows Airtable where that is sensible:
/// - **Fields** read by type (``FormulaValue/init(field:type:)``): absent, null, `""`, an empty list
///   and a value of the wrong shape for the field's type are all *blank*. A checkbox is `true`/`false`;
///   date and dateTime fields are their ISO-8601 text; multi-value fields are lists.
/// - **Blank** counts as 0 for numbers and `""` for text: `{Score} > 3` is false and `{Score} < 3`
///   true for a blank Score; `{Name} = ''` and `{Name} = BLANK()` are true for a blank Name. As in
///   Airtable, `{Score} = BLANK()` and `{Score} = 0` are also true when Score is 0 (blank and 0 compare
///   equal); `LEN({Score} & '') = 0` tells a blank number from 0.
/// - **Comparisons** (``FormulaValue/compare(_:_:_:)``): with a date operand both sides are compared as
///   dates; else with a number or boolean operand both are compared as numbers, so a number field
///   compared to `'3'` coerces the text and `{Done} = 1`, `{Done} = TRUE()` work; else as text,
///   case-sensitively by code point. Operands that do not coerce (`{Score} = 'abc'`) make `!=` true and
///   every other comparison false.
/// - **Arithmetic** coerces both sides to numbers (blank is 0); non-numeric operands, division by zero
///   and overflow give blank (Airtable's `#ERROR`), which is false as a filter.
/// - **Text**: `&`, `FIND`, `SEARCH`, `LOWER`, `UPPER`, `LEN`, `TRIM` use ``FormulaValue/textValue``:
///   multi-value fields are joined with `", "`, numbers print without a trailing `.0`, booleans are
///   `1`/`0`. Lengths and positions count Unicode code points. `FIND` is case-sensitive and gives the
///   1-based position or 0; `SEARCH` is case-insensitive and gives the position or blank (as Airtable).
///   An empty needle is never found. The optional start is 1-based; below 1 means 1.
///   `LOWER`/`UPPER` use full Unicode case mapping; `TRIM` removes spaces, tabs and line breaks.
/// - **Dates**: `DATETIME_PARSE` reads ISO-8601 dates and datetimes, or a format with the tokens
///   `YYYY MM M DD D HH H mm ss` (``FormulaValue/parseDate(_:format:)``), else gives blank.
///   `IS_BEFORE`/`IS_AFTER` read text arguments as ISO-8601 and are false when either side is not a date.
/// - **Truthiness** (``matches(_:)``, `IF`, `AND`, `OR`, `NOT`): blank, 0, `""`, `false` are false.
public struct Formula: Sendable, Hashable {
    /// The text the formula was parsed from.
    public let source: String
    /// The syntax tree, with source positions.
    public let expression: FormulaExpression

    private init(source: String, expression: FormulaExpression) {
        self.source = source
        self.expression = expression
    }

    /// Parses `source`, refusing formulas past `limits`.
    ///
    /// Every formula this returns nests at most `limits.maximumDepth` levels deep, which is what keeps
    /// ``validate(fieldTypes:)``, ``evaluate(_:)`` and anything else walking ``expression`` within a
    /// small stack. (A ``FormulaExpression`` built by hand carries no such guarantee.)
    /// - Throws: ``FormulaError`` of kind `syntax`, `unknownFunction`, `wrongArgumentCount` or
    ///   `limitExceeded`, with the position where the problem starts.
    public static func parse(_ source: String, limits: Limits = .default) throws(FormulaError) -> Formula {
        Formula(source: source, expression: try FormulaParser.parse(source, limits: limits))
    }

    /// Every `{Field}` reference, in source order.
    public var fieldReferences: [FormulaFieldReference] {
        expression.fieldReferences.sorted { $0.position < $1.position }
    }

    /// Checks that every `{Field}` names a field of the table.
    /// - Parameter fieldTypes: the table's fields, by name.
    /// - Throws: ``FormulaError`` of kind `unknownField` at the first unknown reference's `{`.
    public func validate(fieldTypes: [String: FieldType]) throws(FormulaError) {
        for reference in fieldReferences where fieldTypes[reference.name] == nil {
            throw FormulaError(
                kind: .unknownField,
                message: "unknown field {\(reference.name)}",
                position: reference.position
            )
        }
    }

    /// The formula's value for `record`.
    public func evaluate(_ record: some FormulaRecord) -> FormulaValue {
        expression.evaluate(record)
    }

    /// Whether `record` passes the formula as a filter: whether its value is truthy.
    public func matches(_ record: some FormulaRecord) -> Bool {
        evaluate(record).isTruthy
    }
}
