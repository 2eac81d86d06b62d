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
struct FormulaParser {
    private let tokens: [FormulaToken]
    private var index = 0

    private init(tokens: [FormulaToken]) {
        self.tokens = tokens
    }

    /// Parses a whole formula.
    static func parse(_ source: String) throws(FormulaError) -> FormulaExpression {
        var parser = FormulaParser(tokens: try FormulaLexer.tokenize(source))
        if parser.current.kind == .end {
            throw FormulaError(kind: .syntax, message: "empty formula", position: 0)
        }
        let expression = try parser.comparison()
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

    private mutating func binaryLevel(
        _ precedence: Int,
        operand: (inout FormulaParser) throws(FormulaError) -> FormulaExpression
    ) throws(FormulaError) -> FormulaExpression {
        var lhs = try operand(&self)
        while case .operator(let op) = current.kind, op.precedence == precedence {
            let position = current.position
            advance()
            let rhs = try operand(&self)
            lhs = FormulaExpression(.binary(op, lhs, rhs), position: position)
        }
        return lhs
    }

    private mutating func comparison() throws(FormulaError) -> FormulaExpression {
        try binaryLevel(1) { (parser: inout FormulaParser) throws(FormulaError) in try parser.concatenation() }
    }

    private mutating func concatenation() throws(FormulaError) -> FormulaExpression {
        try binaryLevel(2) { (parser: inout FormulaParser) throws(FormulaError) in try parser.additive() }
    }

    private mutating func additive() throws(FormulaError) -> FormulaExpression {
        try binaryLevel(3) { (parser: inout FormulaParser) throws(FormulaError) in try parser.multiplicative() }
    }

    private mutating func multiplicative() throws(FormulaError) -> FormulaExpression {
        try binaryLevel(4) { (parser: inout FormulaParser) throws(FormulaError) in try parser.unary() }
    }

    private mutating func unary() throws(FormulaError) -> FormulaExpression {
        if case .operator(.subtract) = current.kind {
            let position = current.position
            advance()
            let operand = try unary()
            return FormulaExpression(.negate(operand), position: position)
        }
        return try primary()
    }

    private mutating func primary() throws(FormulaError) -> FormulaExpression {
        let token = current
        switch token.kind {
        case .number(let value):
            advance()
            return FormulaExpression(.number(value), position: token.position)
        case .string(let value):
            advance()
            return FormulaExpression(.string(value), position: token.position)
        case .field(let name):
            advance()
            return FormulaExpression(.field(name), position: token.position)
        case .leftParen:
            advance()
            let inner = try comparison()
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
            return inner
        case .identifier(let name):
            return try call(name: name, at: token.position)
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

    private mutating func call(name: String, at position: Int) throws(FormulaError) -> FormulaExpression {
        advance()
        guard current.kind == .leftParen else {
            if FormulaFunction(name: name) != nil {
                throw FormulaError(
                    kind: .syntax,
                    message: "expected '(' after \(name.uppercased())",
                    position: current.position
                )
            }
            throw FormulaError(
                kind: .syntax,
                message: "unexpected name \(name): field names are written in braces, like {\(name)}",
                position: position
            )
        }
        guard let function = FormulaFunction(name: name) else {
            throw FormulaError(kind: .unknownFunction, message: "unknown function \(name)", position: position)
        }
        let openParenthesis = current.position
        advance()
        var arguments: [FormulaExpression] = []
        if current.kind == .rightParen {
            advance()
        } else {
            while true {
                arguments.append(try comparison())
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
        return FormulaExpression(.call(function, arguments), position: position)
    }

    private func missingClosingParenthesis(openedAt position: Int) -> FormulaError {
        FormulaError(kind: .syntax, message: "unclosed '(': missing ')'", position: position)
    }
}
