/// A node of a parsed formula (the abstract syntax tree), with the position it starts at in the source.
///
/// Positions are 0-based offsets in characters (`Character`s) of ``Formula/source``: the opening `{` of a
/// field reference, the opening quote of a string, the first character of a number, the name of a
/// called function, the `-` of a negation and the operator of a binary operation.
public struct FormulaExpression: Sendable, Hashable {
    /// What the node is.
    public indirect enum Node: Sendable, Hashable {
        /// A number literal such as `3` or `2.5`.
        case number(Double)
        /// A string literal such as `'Done'`, escapes already resolved.
        case string(String)
        /// A field reference `{Field Name}`; the payload is the field name, escapes resolved.
        case field(String)
        /// Unary minus: `-x`.
        case negate(FormulaExpression)
        /// A binary operation such as `a + b` or `a = b`.
        case binary(FormulaOperator, FormulaExpression, FormulaExpression)
        /// A function call such as `AND(a, b)`; the arity was checked by the parser.
        case call(FormulaFunction, [FormulaExpression])
    }

    /// What the node is.
    public var node: Node
    /// Where the node starts in the source (see the type's documentation).
    public var position: Int

    /// Makes a node.
    public init(_ node: Node, position: Int) {
        self.node = node
        self.position = position
    }

    /// The direct children of this node, left to right.
    public var children: [FormulaExpression] {
        switch node {
        case .number, .string, .field: []
        case .negate(let operand): [operand]
        case .binary(_, let lhs, let rhs): [lhs, rhs]
        case .call(_, let arguments): arguments
        }
    }

    /// Whether the value of this node is the same for every record: it references no field and
    /// does not call `RECORD_ID()`. Such a node can be evaluated once, against any record.
    public var isConstant: Bool {
        switch node {
        case .field: return false
        case .call(.recordID, _): return false
        default: return children.allSatisfy(\.isConstant)
        }
    }

    /// Every field reference below (and including) this node, in source order.
    public var fieldReferences: [FormulaFieldReference] {
        var references: [FormulaFieldReference] = []
        collectFieldReferences(into: &references)
        return references
    }

    private func collectFieldReferences(into references: inout [FormulaFieldReference]) {
        if case .field(let name) = node {
            references.append(FormulaFieldReference(name: name, position: position))
        }
        for child in children {
            child.collectFieldReferences(into: &references)
        }
    }
}

/// A `{Field Name}` reference in a formula.
public struct FormulaFieldReference: Sendable, Hashable {
    /// The field name, escapes resolved.
    public var name: String
    /// The 0-based character offset of the opening `{`.
    public var position: Int

    /// Makes a reference.
    public init(name: String, position: Int) {
        self.name = name
        self.position = position
    }
}

/// A binary operator of the formula language.
///
/// Precedence, loosest first: comparisons (`= != <> < > <= >=`), `&`, `+ -`, `* /`; then unary minus.
/// All binary operators are left-associative, so `a = b = c` is `(a = b) = c`.
public enum FormulaOperator: String, Sendable, Hashable, CaseIterable {
    /// `+`: numeric addition.
    case add = "+"
    /// `-`: numeric subtraction.
    case subtract = "-"
    /// `*`: numeric multiplication.
    case multiply = "*"
    /// `/`: numeric division; dividing by zero gives blank.
    case divide = "/"
    /// `&`: text concatenation.
    case concatenate = "&"
    /// `=`.
    case equal = "="
    /// `!=`, also written `<>`.
    case notEqual = "!="
    /// `<`.
    case less = "<"
    /// `<=`.
    case lessOrEqual = "<="
    /// `>`.
    case greater = ">"
    /// `>=`.
    case greaterOrEqual = ">="

    /// Whether this is one of the six comparison operators.
    public var isComparison: Bool {
        switch self {
        case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual: true
        default: false
        }
    }

    /// The comparison that gives the same answer with its operands swapped (`<` for `>`), or `self`
    /// for non-comparisons and the symmetric `=` and `!=`.
    public var mirrored: FormulaOperator {
        switch self {
        case .less: .greater
        case .lessOrEqual: .greaterOrEqual
        case .greater: .less
        case .greaterOrEqual: .lessOrEqual
        default: self
        }
    }

    /// Binding strength: higher binds tighter.
    var precedence: Int {
        switch self {
        case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual: 1
        case .concatenate: 2
        case .add, .subtract: 3
        case .multiply, .divide: 4
        }
    }
}

/// A function of the formula language. Names are matched case-insensitively.
public enum FormulaFunction: String, Sendable, Hashable, CaseIterable {
    /// `AND(a, ...)`: true when every argument is truthy.
    case and = "AND"
    /// `OR(a, ...)`: true when some argument is truthy.
    case or = "OR"
    /// `NOT(a)`: true when the argument is not truthy.
    case not = "NOT"
    /// `IF(condition, then, [else])`: `else` defaults to blank.
    case `if` = "IF"
    /// `TRUE()`.
    case `true` = "TRUE"
    /// `FALSE()`.
    case `false` = "FALSE"
    /// `BLANK()`: the blank value.
    case blank = "BLANK"
    /// `RECORD_ID()`: the id of the record being evaluated.
    case recordID = "RECORD_ID"
    /// `FIND(needle, haystack, [start])`: case-sensitive 1-based position, 0 when absent.
    case find = "FIND"
    /// `SEARCH(needle, haystack, [start])`: case-insensitive 1-based position, blank when absent.
    case search = "SEARCH"
    /// `LOWER(text)`.
    case lower = "LOWER"
    /// `UPPER(text)`.
    case upper = "UPPER"
    /// `LEN(text)`: the number of Unicode code points.
    case len = "LEN"
    /// `TRIM(text)`: removes leading and trailing spaces, tabs and line breaks.
    case trim = "TRIM"
    /// `IS_BEFORE(date1, date2)`: whether date1 is strictly earlier.
    case isBefore = "IS_BEFORE"
    /// `IS_AFTER(date1, date2)`: whether date1 is strictly later.
    case isAfter = "IS_AFTER"
    /// `DATETIME_PARSE(text, [format])`: a date from text.
    case datetimeParse = "DATETIME_PARSE"

    /// The function named `name`, ignoring case, or `nil`.
    public init?(name: String) {
        self.init(rawValue: name.uppercased())
    }

    /// The number of arguments the function accepts (`Int.max` for "any number").
    public var arity: ClosedRange<Int> {
        switch self {
        case .and, .or: 1...Int.max
        case .not, .lower, .upper, .len, .trim: 1...1
        case .if: 2...3
        case .true, .false, .blank, .recordID: 0...0
        case .find, .search: 2...3
        case .isBefore, .isAfter: 2...2
        case .datetimeParse: 1...2
        }
    }

    /// The arity in words, for error messages: `1 argument`, `2 or 3 arguments`.
    var arityDescription: String {
        let range = arity
        func plural(_ count: Int) -> String { count == 1 ? "argument" : "arguments" }
        if range.upperBound == Int.max { return "at least \(range.lowerBound) \(plural(range.lowerBound))" }
        if range.lowerBound == range.upperBound { return "\(range.lowerBound) \(plural(range.lowerBound))" }
        if range.upperBound == range.lowerBound + 1 {
            return "\(range.lowerBound) or \(range.upperBound) arguments"
        }
        return "\(range.lowerBound) to \(range.upperBound) arguments"
    }
}
