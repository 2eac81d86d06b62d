/// A token of the formula language.
struct FormulaToken: Sendable, Hashable {
    enum Kind: Sendable, Hashable {
        case number(Double)
        case string(String)
        case field(String)
        case identifier(String)
        case `operator`(FormulaOperator)
        case leftParen
        case rightParen
        case comma
        case end
    }

    var kind: Kind
    /// 0-based character offset of the token's first character.
    var position: Int

    /// The token as the user wrote it (approximately), for error messages.
    var display: String {
        switch kind {
        case .number(let value): FormulaValue.number(value).textValue
        case .string(let value): "'\(value)'"
        case .field(let name): "{\(name)}"
        case .identifier(let name): name
        case .operator(let op): op.rawValue
        case .leftParen: "("
        case .rightParen: ")"
        case .comma: ","
        case .end: "end of formula"
        }
    }
}

/// Splits a formula into tokens.
///
/// - Field references: `{` any characters `}`; inside, `\}` stands for `}` and `\\` for `\`; any other
///   backslash is kept as is. An empty name `{}` is an error.
/// - Strings: `'...'` or `"..."`; escapes `\n`, `\t`, `\r`, `\\`, `\'`, `\"`; a backslash before any other
///   character stands for that character.
/// - Numbers: digits with an optional fraction (`3`, `2.5`, `.5`). There is no sign: `-3` is unary minus.
/// - Identifiers: letters, digits and `_`, starting with a letter or `_`: a function name when `(`
///   follows, else a field name written without braces (Airtable's rule).
/// - Operators: `+ - * / & = != <> < > <= >=`; whitespace separates tokens.
struct FormulaLexer {
    private let characters: [Character]
    private var index = 0

    init(_ source: String) {
        self.characters = Array(source)
    }

    /// All tokens of the source, ending with `.end`.
    /// - Throws: ``FormulaError`` of kind `limitExceeded` when the source is longer than
    ///   `limits.maximumLength` characters (at that offset) or has more than `limits.maximumTokens`
    ///   tokens (at the first token past the limit); else of kind `syntax`.
    static func tokenize(_ source: String, limits: Formula.Limits = .default) throws(FormulaError) -> [FormulaToken] {
        // A UTF-8 count within the limit bounds the character count too, without walking graphemes.
        if source.utf8.count > limits.maximumLength, source.count > limits.maximumLength {
            throw FormulaError(
                kind: .limitExceeded,
                message: "the formula is longer than \(limits.maximumLength) characters",
                position: limits.maximumLength
            )
        }
        var lexer = FormulaLexer(source)
        var tokens: [FormulaToken] = []
        while true {
            let token = try lexer.next()
            if token.kind == .end {
                tokens.append(token)
                return tokens
            }
            guard tokens.count < limits.maximumTokens else {
                throw FormulaError(
                    kind: .limitExceeded,
                    message: "the formula has more than \(limits.maximumTokens) tokens",
                    position: token.position
                )
            }
            tokens.append(token)
        }
    }

    private var current: Character? { index < characters.count ? characters[index] : nil }

    private func peek(_ offset: Int) -> Character? {
        index + offset < characters.count ? characters[index + offset] : nil
    }

    mutating func next() throws(FormulaError) -> FormulaToken {
        while let character = current, character.isWhitespace { index += 1 }
        let start = index
        guard let character = current else { return FormulaToken(kind: .end, position: start) }
        switch character {
        case "{":
            return FormulaToken(kind: .field(try fieldName()), position: start)
        case "'", "\"":
            return FormulaToken(kind: .string(try stringLiteral()), position: start)
        case "(":
            index += 1
            return FormulaToken(kind: .leftParen, position: start)
        case ")":
            index += 1
            return FormulaToken(kind: .rightParen, position: start)
        case ",":
            index += 1
            return FormulaToken(kind: .comma, position: start)
        case "+", "-", "*", "/", "&", "=":
            index += 1
            guard let op = FormulaOperator(rawValue: String(character)) else {
                throw FormulaError(kind: .syntax, message: "unexpected character '\(character)'", position: start)
            }
            return FormulaToken(kind: .operator(op), position: start)
        case "!":
            guard peek(1) == "=" else {
                throw FormulaError(
                    kind: .syntax,
                    message: "unexpected character '!' (did you mean '!=')",
                    position: start
                )
            }
            index += 2
            return FormulaToken(kind: .operator(.notEqual), position: start)
        case "<":
            index += 1
            if current == "=" {
                index += 1
                return FormulaToken(kind: .operator(.lessOrEqual), position: start)
            }
            if current == ">" {
                index += 1
                return FormulaToken(kind: .operator(.notEqual), position: start)
            }
            return FormulaToken(kind: .operator(.less), position: start)
        case ">":
            index += 1
            if current == "=" {
                index += 1
                return FormulaToken(kind: .operator(.greaterOrEqual), position: start)
            }
            return FormulaToken(kind: .operator(.greater), position: start)
        default:
            if character.isASCIIDigit || (character == "." && (peek(1)?.isASCIIDigit ?? false)) {
                return FormulaToken(kind: .number(try number()), position: start)
            }
            if character.isIdentifierStart {
                var name = ""
                while let next = current, next.isIdentifierStart || next.isASCIIDigit {
                    name.append(next)
                    index += 1
                }
                return FormulaToken(kind: .identifier(name), position: start)
            }
            throw FormulaError(kind: .syntax, message: "unexpected character '\(character)'", position: start)
        }
    }

    private mutating func fieldName() throws(FormulaError) -> String {
        let start = index
        index += 1  // {
        var name = ""
        while let character = current {
            if character == "}" {
                index += 1
                guard !name.isEmpty else {
                    throw FormulaError(kind: .syntax, message: "empty field reference {}", position: start)
                }
                return name
            }
            if character == "\\", let escaped = peek(1), escaped == "}" || escaped == "\\" {
                name.append(escaped)
                index += 2
                continue
            }
            name.append(character)
            index += 1
        }
        throw FormulaError(kind: .syntax, message: "unterminated field reference: missing '}'", position: start)
    }

    private mutating func stringLiteral() throws(FormulaError) -> String {
        let start = index
        guard let quote = current else {
            throw FormulaError(kind: .syntax, message: "expected a string", position: start)
        }
        index += 1
        var value = ""
        while let character = current {
            if character == quote {
                index += 1
                return value
            }
            if character == "\\" {
                guard let escaped = peek(1) else { break }
                switch escaped {
                case "n": value.append("\n")
                case "t": value.append("\t")
                case "r": value.append("\r")
                default: value.append(escaped)
                }
                index += 2
                continue
            }
            value.append(character)
            index += 1
        }
        throw FormulaError(
            kind: .syntax,
            message: "unterminated string: missing closing \(quote)",
            position: start
        )
    }

    private mutating func number() throws(FormulaError) -> Double {
        let start = index
        var text = ""
        while let character = current, character.isASCIIDigit {
            text.append(character)
            index += 1
        }
        if current == ".", peek(1)?.isASCIIDigit ?? false {
            text.append(".")
            index += 1
            while let character = current, character.isASCIIDigit {
                text.append(character)
                index += 1
            }
        }
        if text.hasPrefix(".") { text = "0" + text }
        guard let value = Double(text), value.isFinite else {
            throw FormulaError(kind: .syntax, message: "invalid number \(text)", position: start)
        }
        return value
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
    fileprivate var isIdentifierStart: Bool { (isASCII && isLetter) || self == "_" }
}
