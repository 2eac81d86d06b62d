/// A recursive-descent parser for the formula language.
///
/// Grammar, loosest first:
/// ```
/// formula        := comparison END
/// comparison     := concatenation (("=" | "!=" | "<>" | "<" | ">" | "<=" | ">=") concatenation)*
/// concatenation  := additive ("&" additive)*
/// additive       := multiplicative (("+" | "-") multiplicative)*
/// multiplicative := unary (("*" | "/") unary)*
/// unary          := "-" unary | primary
/// primary        := NUMBER | STRING | FIELD | NAME "(" [comparison ("," comparison)*] ")" | "(" comparison ")"
/// ```
/// Function names are checked (``FormulaError/Kind-swift.enum/unknownFunction``) as soon as the name is
/// read, and arities (``FormulaError/Kind-swift.enum/wrongArgumentCount``) once the arguments are; both
/// errors point at the function name.
///
/// The parser enforces ``Formula/Limits``: the lexer refuses a formula longer than the length limit or
/// with more tokens than the token limit, and the parser one nested deeper than the depth limit, so
/// every tree it returns can be walked recursively with a small, known stack.
struct FormulaParser {
    /// A parsed subtree and its height in levels (see ``Formula/Limits/maximumDepth``: a
    /// parenthesised group counts as a level although it adds no node).
    private typealias Parsed = (expression: FormulaExpression, height: Int)

    private let tokens: [FormulaToken]
    private let maximumDepth: Int
    private var index = 0

    private init(tokens: [FormulaToken], maximumDepth: Int) {
        self.tokens = tokens
        self.maximumDepth = maximumDepth
    }

    /// Parses a whole formula within `limits`.
    static func parse(_ source: String, limits: Formula.Limits = .default) throws(FormulaError) -> FormulaExpression {
        var parser = FormulaParser(
            tokens: try FormulaLexer.tokenize(source, limits: limits),
            maximumDepth: limits.maximumDepth
        )
        if parser.current.kind == .end {
            throw FormulaError(kind: .syntax, message: "empty formula", position: 0)
        }
        let expression = try parser.comparison(enclosing: 0).expression
        let trailing = parser.current
        if trailing.kind == .rightParen {
            throw FormulaError(kind: .syntax, message: "unmatched ')'", position: trailing.position)
        }
        if trailing.kind != .end {
            throw FormulaError(
                kind: .syntax,
                message: "unexpected \(trailing.display) after the end of the formula",
                position: trailing.position
            )
        }
        return expression
    }

    private var current: FormulaToken {
        // The token list always ends with `.end`, and `advance()` never moves past it.
        tokens[min(index, tokens.count - 1)]
    }

    private mutating func advance() {
        if index < tokens.count - 1 { index += 1 }
    }

    private func tooDeep(at position: Int) -> FormulaError {
        FormulaError(
            kind: .limitExceeded,
            message: "the formula nests deeper than \(maximumDepth) levels",
            position: position
        )
    }

    // Every parsing function takes `enclosing`, the number of levels already open above the subtree it
    // parses, and checks the whole tree's depth as it builds: no recursion goes deeper than the limit,
    // and no tree deeper than the limit is returned.

    private mutating func binaryLevel(
        _ precedence: Int,
        enclosing: Int,
        operand: (inout FormulaParser, Int) throws(FormulaError) -> Parsed
    ) throws(FormulaError) -> Parsed {
        var lhs = try operand(&self, enclosing)
        while case .operator(let op) = current.kind, op.precedence == precedence {
            let position = current.position
            advance()
            let rhs = try operand(&self, enclosing + 1)
            let height = 1 + max(lhs.height, rhs.height)
            // A left-associative chain (`1+1+1+…`) grows deeper with every operator.
            guard enclosing + height <= maximumDepth else { throw tooDeep(at: position) }
            lhs = (FormulaExpression(.binary(op, lhs.expression, rhs.expression), position: position), height)
        }
        return lhs
    }

    private mutating func comparison(enclosing: Int) throws(FormulaError) -> Parsed {
        try binaryLevel(1, enclosing: enclosing) { (parser: inout FormulaParser, enclosing: Int) throws(FormulaError) in
            try parser.concatenation(enclosing: enclosing)
        }
    }

    private mutating func concatenation(enclosing: Int) throws(FormulaError) -> Parsed {
        try binaryLevel(2, enclosing: enclosing) { (parser: inout FormulaParser, enclosing: Int) throws(FormulaError) in
            try parser.additive(enclosing: enclosing)
        }
    }

    private mutating func additive(enclosing: Int) throws(FormulaError) -> Parsed {
        try binaryLevel(3, enclosing: enclosing) { (parser: inout FormulaParser, enclosing: Int) throws(FormulaError) in
            try parser.multiplicative(enclosing: enclosing)
        }
    }

    private mutating func multiplicative(enclosing: Int) throws(FormulaError) -> Parsed {
        try binaryLevel(4, enclosing: enclosing) { (parser: inout FormulaParser, enclosing: Int) throws(FormulaError) in
            try parser.unary(enclosing: enclosing)
        }
    }

    private mutating func unary(enclosing: Int) throws(FormulaError) -> Parsed {
        // Every nested construct (group, call, negation, operand of an operator) is parsed through
        // here, so this one check bounds the parser's own recursion.
        guard enclosing < maximumDepth else { throw tooDeep(at: current.position) }
        if case .operator(.subtract) = current.kind {
            let position = current.position
            advance()
            let operand = try unary(enclosing: enclosing + 1)
            return (FormulaExpression(.negate(operand.expression), position: position), operand.height + 1)
        }
        return try primary(enclosing: enclosing)
    }

    private mutating func primary(enclosing: Int) throws(FormulaError) -> Parsed {
        let token = current
        switch token.kind {
        case .number(let value):
            advance()
            return (FormulaExpression(.number(value), position: token.position), 1)
        case .string(let value):
            advance()
            return (FormulaExpression(.string(value), position: token.position), 1)
        case .field(let name):
            advance()
            return (FormulaExpression(.field(name), position: token.position), 1)
        case .leftParen:
            advance()
            let inner = try comparison(enclosing: enclosing + 1)
            if current.kind == .end {
                throw missingClosingParenthesis(openedAt: token.position)
            }
            guard current.kind == .rightParen else {
                throw FormulaError(
                    kind: .syntax,
                    message: "expected ')', found \(current.display)",
                    position: current.position
                )
            }
            advance()
            return (inner.expression, inner.height + 1)
        case .identifier(let name):
            return try call(name: name, at: token.position, enclosing: enclosing)
        case .end:
            throw FormulaError(kind: .syntax, message: "unexpected end of formula", position: token.position)
        case .rightParen, .comma, .operator:
            throw FormulaError(
                kind: .syntax,
                message: "expected a value, found \(token.display)",
                position: token.position
            )
        }
    }

    private mutating func call(name: String, at position: Int, enclosing: Int) throws(FormulaError) -> Parsed {
        advance()
        guard current.kind == .leftParen else {
            // Airtable's rule: a name not followed by `(` is a field (`Status = 'Done'`), as pyairtable
            // and hand-written formulas use it; `{…}` is needed only for names that are not one word.
            return (FormulaExpression(.field(name), position: position), 1)
        }
        guard let function = FormulaFunction(name: name) else {
            throw FormulaError(kind: .unknownFunction, message: "unknown function \(name)", position: position)
        }
        let openParenthesis = current.position
        advance()
        var arguments: [FormulaExpression] = []
        var height = 1
        if current.kind == .rightParen {
            advance()
        } else {
            while true {
                let argument = try comparison(enclosing: enclosing + 1)
                arguments.append(argument.expression)
                height = max(height, argument.height + 1)
                if current.kind == .comma {
                    advance()
                    continue
                }
                if current.kind == .rightParen {
                    advance()
                    break
                }
                if current.kind == .end {
                    throw missingClosingParenthesis(openedAt: openParenthesis)
                }
                throw FormulaError(
                    kind: .syntax,
                    message: "expected ',' or ')' in \(function.rawValue)(...), found \(current.display)",
                    position: current.position
                )
            }
        }
        guard function.arity.contains(arguments.count) else {
            throw FormulaError(
                kind: .wrongArgumentCount,
                message: "\(function.rawValue) expects \(function.arityDescription), got \(arguments.count)",
                position: position
            )
        }
        return (FormulaExpression(.call(function, arguments), position: position), height)
    }

    private func missingClosingParenthesis(openedAt position: Int) -> FormulaError {
        FormulaError(kind: .syntax, message: "unclosed '(': missing ')'", position: position)
    }
}
