import Foundation

/// The value of a formula or of one of its parts.
///
/// The coercion rules (see ``Formula`` for the whole language):
/// - ``numericValue``: blank is 0, `true`/`false` are 1/0, text is a number when it reads as one
///   (`" 3.5 "`, `"-2"`, `"1e3"`), dates and lists are not numbers.
/// - ``textValue``: blank is `""`, whole numbers print without a fraction (`3`, not `3.0`), `true`/`false`
///   are `"1"`/`"0"`, dates print as ISO-8601 UTC with milliseconds, lists are joined with `", "`.
/// - ``isTruthy``: blank, 0, `""`, `false` and an empty list are false; everything else is true.
public enum FormulaValue: Sendable, Hashable {
    /// No value: an absent or empty field, `BLANK()`, the result of an impossible operation.
    case blank
    /// A finite number.
    case number(Double)
    /// Text (possibly empty, unlike a field, whose empty text reads as ``blank``).
    case text(String)
    /// A boolean, from a checkbox, a comparison or `TRUE()`/`FALSE()`.
    case bool(Bool)
    /// A point in time, from `DATETIME_PARSE`.
    case date(Date)
    /// The values of a multi-value field (multiple selects, record links, attachment file names).
    case list([String])

    /// The formula value of a field, given the field's type.
    ///
    /// A cell of the wrong shape for its type reads as blank, so evaluation never sees a surprise:
    /// - `number`: a number, else blank;
    /// - text types (`singleLineText`, `multilineText`, `singleSelect`, `email`, `url`, `date`,
    ///   `dateTime`): non-empty text, else blank (date fields stay ISO-8601 text; date functions parse it);
    /// - `checkbox`: `true` or `false`, else blank;
    /// - `multipleSelects`, `multipleRecordLinks`: the non-empty strings as a list, blank if none;
    /// - `multipleAttachments`: the attachments' file names (or ids) as a list, blank if none;
    /// - no type, or a type this version does not know: read by the value's own shape with the same rules.
    public init(field value: FieldValue?, type: FieldType?) {
        guard let value else {
            self = .blank
            return
        }
        switch type {
        case .some(.number):
            if case .number(let number) = value, number.isFinite { self = .number(number) } else { self = .blank }
        case .some(let type) where type.isText:
            if case .string(let string) = value, !string.isEmpty { self = .text(string) } else { self = .blank }
        case .some(.checkbox):
            if case .bool(let bool) = value { self = .bool(bool) } else { self = .blank }
        case .some(.multipleSelects), .some(.multipleRecordLinks):
            if case .strings(let strings) = value { self = Self.nonBlankList(strings) } else { self = .blank }
        case .some(.multipleAttachments):
            if case .attachments(let attachments) = value {
                self = Self.nonBlankList(attachments.map { $0.filename ?? $0.id.rawValue })
            } else {
                self = .blank
            }
        default:
            switch value {
            case .null: self = .blank
            case .string(let string): self = string.isEmpty ? .blank : .text(string)
            case .number(let number): self = number.isFinite ? .number(number) : .blank
            case .bool(let bool): self = .bool(bool)
            case .strings(let strings): self = Self.nonBlankList(strings)
            case .attachments(let attachments):
                self = Self.nonBlankList(attachments.map { $0.filename ?? $0.id.rawValue })
            }
        }
    }

    private static func nonBlankList(_ strings: [String]) -> FormulaValue {
        let values = strings.filter { !$0.isEmpty }
        return values.isEmpty ? .blank : .list(values)
    }

    /// Whether the value counts as true: blank, 0, `""`, `false` and an empty list do not.
    public var isTruthy: Bool {
        switch self {
        case .blank: false
        case .number(let number): number != 0
        case .text(let text): !text.isEmpty
        case .bool(let bool): bool
        case .date: true
        case .list(let values): !values.isEmpty
        }
    }

    /// The value as a number, as arithmetic and numeric comparisons see it: blank is 0, booleans are
    /// 1/0, text is parsed with ``parseNumber(_:)``; `nil` for unreadable text, dates and lists.
    public var numericValue: Double? {
        switch self {
        case .blank: 0
        case .number(let number): number
        case .bool(let bool): bool ? 1 : 0
        case .text(let text): Self.parseNumber(text)
        case .date, .list: nil
        }
    }

    /// The value as text, as `&` and the text functions see it.
    public var textValue: String {
        switch self {
        case .blank: ""
        case .number(let number): Self.format(number)
        case .text(let text): text
        case .bool(let bool): bool ? "1" : "0"
        case .date(let date): Timestamp.format(date)
        case .list(let values): values.joined(separator: ", ")
        }
    }

    /// The value as a date, as `IS_BEFORE`, `IS_AFTER` and date comparisons see it: a date, or text
    /// read as ISO-8601 (see ``parseDate(_:format:)``); `nil` otherwise (blank included).
    public var dateValue: Date? {
        switch self {
        case .date(let date): date
        case .text(let text): Self.parseDate(text)
        default: nil
        }
    }

    /// Reads `text` as a number: optional surrounding whitespace, an optional sign, digits with an
    /// optional fraction (or a fraction alone, `.5`) and an optional exponent. `nil` otherwise
    /// (`""`, `"abc"`, `"0x10"`, `"nan"`, `"inf"`, out of range).
    public static func parseNumber(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var bytes = trimmed.utf8[...]
        guard !bytes.isEmpty else { return nil }
        if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }
        let integerDigits = bytes.prefix(while: isDigit).count
        bytes = bytes.dropFirst(integerDigits)
        var fractionDigits = 0
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            fractionDigits = bytes.prefix(while: isDigit).count
            bytes = bytes.dropFirst(fractionDigits)
        }
        guard integerDigits + fractionDigits > 0 else { return nil }
        if bytes.first == UInt8(ascii: "e") || bytes.first == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
            let exponentDigits = bytes.prefix(while: isDigit).count
            guard exponentDigits > 0 else { return nil }
            bytes = bytes.dropFirst(exponentDigits)
        }
        guard bytes.isEmpty, let value = Double(trimmed), value.isFinite else { return nil }
        return value
    }

    /// Formats a number: whole numbers below 10^15 without a fraction (`3`, `-2`), others as Swift
    /// prints a `Double` (`2.5`, `1e+20`).
    public static func format(_ number: Double) -> String {
        if number == number.rounded(), abs(number) < 1e15 {
            return String(Int64(number))
        }
        return "\(number)"
    }

    /// Compares two values with a comparison operator, the way the formula's `=`, `!=`, `<`, `<=`,
    /// `>`, `>=` do. Non-comparison operators give `false`.
    ///
    /// The operands are first brought to one domain:
    /// 1. both blank: equal (as the numbers 0 and 0);
    /// 2. either is a date: both must read as dates (``dateValue``), else they are incomparable;
    /// 3. either is a number or a boolean: both must read as numbers (``numericValue``: blank is 0),
    ///    else incomparable;
    /// 4. otherwise (blank, text, lists): both as text (``textValue``: blank is `""`), compared by
    ///    Unicode code points, case-sensitively, without normalization.
    ///
    /// Incomparable operands make `!=` true and every other comparison false.
    public static func compare(_ op: FormulaOperator, _ lhs: FormulaValue, _ rhs: FormulaValue) -> Bool {
        guard op.isComparison else { return false }
        guard let order = order(lhs, rhs) else { return op == .notEqual }
        switch op {
        case .equal: return order == .orderedSame
        case .notEqual: return order != .orderedSame
        case .less: return order == .orderedAscending
        case .lessOrEqual: return order != .orderedDescending
        case .greater: return order == .orderedDescending
        case .greaterOrEqual: return order != .orderedAscending
        default: return false
        }
    }

    /// How `lhs` orders against `rhs` under ``compare(_:_:_:)``'s rules, or `nil` when incomparable.
    static func order(_ lhs: FormulaValue, _ rhs: FormulaValue) -> ComparisonResult? {
        if case .blank = lhs, case .blank = rhs { return .orderedSame }
        if lhs.isDate || rhs.isDate {
            guard let x = lhs.dateValue, let y = rhs.dateValue else { return nil }
            return x < y ? .orderedAscending : (x == y ? .orderedSame : .orderedDescending)
        }
        if lhs.isNumeric || rhs.isNumeric {
            guard let x = lhs.numericValue, let y = rhs.numericValue else { return nil }
            return x < y ? .orderedAscending : (x == y ? .orderedSame : .orderedDescending)
        }
        let x = lhs.textValue.utf8
        let y = rhs.textValue.utf8
        if x.elementsEqual(y) { return .orderedSame }
        return x.lexicographicallyPrecedes(y) ? .orderedAscending : .orderedDescending
    }

    private var isDate: Bool {
        if case .date = self { return true }
        return false
    }

    private var isNumeric: Bool {
        switch self {
        case .number, .bool: true
        default: false
        }
    }
}

// MARK: - Text search

extension FormulaValue {
    /// The start position `FIND`/`SEARCH` use for their optional third argument: the argument as a
    /// number rounded down, at least 1 (so blank, unreadable text and values below 1 all mean 1).
    public static func searchStart(_ argument: FormulaValue?) -> Int {
        guard let number = argument?.numericValue else { return 1 }
        return Int(max(1, min(Double(Int32.max), number.rounded(.down))))
    }

    /// The 1-based position (in Unicode code points) of the first occurrence of `needle` in
    /// `haystack` at or after position `start`, or `nil`. An empty needle is never found.
    ///
    /// Case-insensitive search lowercases each code point on its own (its simple lowercase mapping when
    /// that is a single code point), so positions are those of the original text.
    public static func position(
        of needle: String,
        in haystack: String,
        from start: Int,
        caseInsensitive: Bool
    ) -> Int? {
        var needleScalars = Array(needle.unicodeScalars)
        var haystackScalars = Array(haystack.unicodeScalars)
        guard !needleScalars.isEmpty, start >= 1, start - 1 <= haystackScalars.count else { return nil }
        if caseInsensitive {
            needleScalars = needleScalars.map(Self.foldCase)
            haystackScalars = haystackScalars.map(Self.foldCase)
        }
        let count = needleScalars.count
        var index = start - 1
        while index + count <= haystackScalars.count {
            if haystackScalars[index..<(index + count)].elementsEqual(needleScalars) { return index + 1 }
            index += 1
        }
        return nil
    }

    private static func foldCase(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        if scalar.isASCII {
            let value = scalar.value
            return value >= 65 && value <= 90 ? Unicode.Scalar(UInt8(value + 32)) : scalar
        }
        let mapped = scalar.properties.lowercaseMapping.unicodeScalars
        if mapped.count == 1, let first = mapped.first { return first }
        return scalar
    }

    /// The characters `TRIM` removes from both ends: space, tab, line feed, carriage return.
    public static let trimmedCharacters: Set<Unicode.Scalar> = [" ", "\t", "\n", "\r"]

    /// `text` without leading and trailing ``trimmedCharacters``.
    public static func trim(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        guard let first = scalars.firstIndex(where: { !trimmedCharacters.contains($0) }),
            let last = scalars.lastIndex(where: { !trimmedCharacters.contains($0) })
        else { return "" }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[first...last])
        return String(view)
    }
}

// MARK: - Dates

extension FormulaValue {
    /// Reads a date.
    ///
    /// Without a format (or with an empty one), ISO-8601: `YYYY-MM-DD` (midnight UTC) or
    /// `YYYY-MM-DDTHH:MM[:SS[.fraction]]` with `T` or a space, followed by `Z`, `±HH:MM`, `±HHMM` or
    /// nothing (UTC).
    ///
    /// With a format, a small subset of Airtable's (moment.js) tokens: `YYYY` (4 digits), `MM`, `DD`,
    /// `HH`, `mm`, `ss` (2 digits), `M`, `D`, `H` (1 or 2 digits); every other character of the format
    /// must appear as is. The result is in UTC. So `DATETIME_PARSE('21/11/2026', 'DD/MM/YYYY')` and
    /// `DATETIME_PARSE('11/21/2026 18:30', 'M/D/YYYY HH:mm')` work; other tokens fail to match.
    ///
    /// - Returns: `nil` when the text does not match or names an impossible date.
    public static func parseDate(_ text: String, format: String? = nil) -> Date? {
        if let format, !format.isEmpty {
            return DateParser.parse(Array(text.utf8), format: Array(format.utf8))
        }
        return DateParser.parseISO(Array(text.utf8))
    }
}

private enum DateParser {
    struct Components {
        var year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0
        var fraction = 0.0
        var offsetSeconds = 0

        var date: Date? {
            guard (1...12).contains(month), (1...daysInMonth(year, month)).contains(day), (0...23).contains(hour),
                (0...59).contains(minute), (0...59).contains(second)
            else { return nil }
            let days = daysFromCivil(year, month, day)
            let seconds = Double(days * 86_400 + hour * 3_600 + minute * 60 + second - offsetSeconds) + fraction
            return Date(timeIntervalSince1970: seconds)
        }
    }

    static func parseISO(_ bytes: [UInt8]) -> Date? {
        var reader = Reader(bytes: bytes)
        var components = Components()
        guard let year = reader.digits(4), reader.literal("-"), let month = reader.digits(2), reader.literal("-"),
            let day = reader.digits(2)
        else { return nil }
        components.year = year
        components.month = month
        components.day = day
        if reader.isAtEnd { return components.date }
        guard reader.literal("T") || reader.literal("t") || reader.literal(" "),
            let hour = reader.digits(2), reader.literal(":"), let minute = reader.digits(2)
        else { return nil }
        components.hour = hour
        components.minute = minute
        if reader.literal(":") {
            guard let second = reader.digits(2) else { return nil }
            components.second = second
            if reader.literal(".") || reader.literal(",") {
                var fraction = 0.0
                var scale = 0.1
                var count = 0
                while let digit = reader.digit() {
                    fraction += Double(digit) * scale
                    scale /= 10
                    count += 1
                }
                guard count > 0 else { return nil }
                components.fraction = fraction
            }
        }
        if reader.literal("Z") || reader.literal("z") {
        } else if let sign = reader.sign() {
            guard let hours = reader.digits(2) else { return nil }
            _ = reader.literal(":")
            guard let minutes = reader.digits(2), hours <= 23, minutes <= 59 else { return nil }
            components.offsetSeconds = sign * (hours * 3_600 + minutes * 60)
        }
        guard reader.isAtEnd else { return nil }
        return components.date
    }

    static var twoDigitTokens: [(String, WritableKeyPath<Components, Int>)] {
        [("MM", \.month), ("DD", \.day), ("HH", \.hour), ("mm", \.minute), ("ss", \.second)]
    }
    static var oneOrTwoDigitTokens: [(String, WritableKeyPath<Components, Int>)] {
        [("M", \.month), ("D", \.day), ("H", \.hour)]
    }

    static func parse(_ bytes: [UInt8], format: [UInt8]) -> Date? {
        var reader = Reader(bytes: bytes)
        var components = Components()
        var index = 0
        func hasToken(_ token: String) -> Bool {
            let token = Array(token.utf8)
            return index + token.count <= format.count && Array(format[index..<(index + token.count)]) == token
        }
        while index < format.count {
            if hasToken("YYYY") {
                guard let value = reader.digits(4) else { return nil }
                components.year = value
                index += 4
            } else if let match = twoDigitTokens.first(where: { hasToken($0.0) }) {
                guard let value = reader.digits(2) else { return nil }
                components[keyPath: match.1] = value
                index += 2
            } else if let keyPath = oneOrTwoDigitTokens.first(where: { hasToken($0.0) })?.1 {
                guard let first = reader.digit() else { return nil }
                var value = first
                if let second = reader.digit() { value = value * 10 + second }
                components[keyPath: keyPath] = value
                index += 1
            } else {
                guard reader.byte(format[index]) else { return nil }
                index += 1
            }
        }
        guard reader.isAtEnd else { return nil }
        return components.date
    }

    struct Reader {
        let bytes: [UInt8]
        var index = 0

        var isAtEnd: Bool { index == bytes.count }

        mutating func digit() -> Int? {
            guard index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 else { return nil }
            defer { index += 1 }
            return Int(bytes[index] - 48)
        }

        mutating func digits(_ count: Int) -> Int? {
            let start = index
            var value = 0
            for _ in 0..<count {
                guard let digit = digit() else {
                    index = start
                    return nil
                }
                value = value * 10 + digit
            }
            return value
        }

        mutating func byte(_ expected: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == expected else { return false }
            index += 1
            return true
        }

        mutating func literal(_ character: Unicode.Scalar) -> Bool {
            byte(UInt8(truncatingIfNeeded: character.value))
        }

        mutating func sign() -> Int? {
            if literal("+") { return 1 }
            if literal("-") { return -1 }
            return nil
        }
    }

    static func isLeapYear(_ year: Int) -> Bool { (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 }

    static func daysInMonth(_ year: Int, _ month: Int) -> Int {
        switch month {
        case 2: isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
