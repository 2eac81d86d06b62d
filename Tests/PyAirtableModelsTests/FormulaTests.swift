import Foundation
import Testing

@testable import PyAirtableModels

private let formulaTestTypes: [String: FieldType] = [
    "Name": .singleLineText, "Notes": .multilineText, "Status": .singleSelect, "Score": .number,
    "Done": .checkbox, "Tags": .multipleSelects, "Links": .multipleRecordLinks, "Due": .date,
    "When": .dateTime, "Files": .multipleAttachments,
]

/// Parses and evaluates `source` against a record with `values` (typed by `formulaTestTypes`).
private func evalFormula(
    _ source: String,
    _ values: [String: FieldValue] = [:],
    id: String = "recTEST0000000001",
    types: [String: FieldType] = formulaTestTypes
) throws -> FormulaValue {
    try Formula.parse(source).evaluate(FormulaRecordValues(recordID: id, values: values, types: types))
}

private func formulaMatches(_ source: String, _ values: [String: FieldValue] = [:]) throws -> Bool {
    try Formula.parse(source).matches(
        FormulaRecordValues(recordID: "recTEST0000000001", values: values, types: formulaTestTypes)
    )
}

/// The error `source` fails to parse with, or `nil`.
private func formulaParseError(_ source: String) -> FormulaError? {
    do {
        _ = try Formula.parse(source)
        return nil
    } catch {
        return error
    }
}

private func isoDate(_ iso: String) -> Date? { FormulaValue.parseDate(iso) }

@Suite("Formula parser")
struct FormulaParserTests {
    @Test func precedenceAndAssociativity() throws {
        #expect(try evalFormula("1 + 2 * 3") == .number(7))
        #expect(try evalFormula("(1 + 2) * 3") == .number(9))
        #expect(try evalFormula("10 - 2 - 3") == .number(5))
        #expect(try evalFormula("12 / 2 / 3") == .number(2))
        #expect(try evalFormula("-2 * 3") == .number(-6))
        #expect(try evalFormula("- -2") == .number(2))
        #expect(try evalFormula("'a' & 1 + 2") == .text("a3"))
        #expect(try evalFormula("1 + 2 = 3") == .bool(true))
        #expect(try evalFormula("'x' & 'y' = 'xy'") == .bool(true))
        #expect(try evalFormula(".5 + 1.25") == .number(1.75))
        // Comparisons are left-associative: (1 < 2) < 2 is TRUE() < 2, i.e. 1 < 2.
        #expect(try evalFormula("1 < 2 < 2") == .bool(true))
        #expect(try evalFormula("3 > 2 > 1") == .bool(false))
    }

    @Test func treeShapeAndPositions() throws {
        let formula = try Formula.parse("{A} + 2 * {B}")
        guard case .binary(.add, let lhs, let rhs) = formula.expression.node else {
            Issue.record("expected an addition at the root, got \(formula.expression)")
            return
        }
        #expect(formula.expression.position == 4)
        #expect(lhs == FormulaExpression(.field("A"), position: 0))
        guard case .binary(.multiply, let two, let b) = rhs.node else {
            Issue.record("expected a multiplication on the right, got \(rhs)")
            return
        }
        #expect(rhs.position == 8)
        #expect(two == FormulaExpression(.number(2), position: 6))
        #expect(b == FormulaExpression(.field("B"), position: 10))

        let call = try Formula.parse("  not({X})").expression
        #expect(call.position == 2)
        #expect(call.node == .call(.not, [FormulaExpression(.field("X"), position: 6)]))
    }

    @Test func functionNamesAreCaseInsensitive() throws {
        #expect(try evalFormula("and(true(), Not(False()))") == .bool(true))
        #expect(try evalFormula("Record_Id()", id: "recABC") == .text("recABC"))
        #expect(try evalFormula("lower('ABC') & Upper('def')") == .text("abcDEF"))
        #expect(try evalFormula("datetime_parse('2024-01-05') = DATETIME_PARSE('2024-01-05T00:00:00Z')") == .bool(true))
    }

    @Test("a name not followed by ( is a field, as in Airtable: Status = 'Done'")
    func bareFieldNames() throws {
        let formula = try Formula.parse("Name != 'xxx'")
        #expect(formula.fieldReferences.map(\.name) == ["Name"])
        #expect(
            formula.expression.node
                == .binary(
                    .notEqual,
                    FormulaExpression(.field("Name"), position: 0),
                    FormulaExpression(.string("xxx"), position: 8)
                )
        )
        #expect(try formulaMatches("Name != 'xxx'", ["Name": "Ada"]))
        #expect(try !formulaMatches("Name = 'xxx'", ["Name": "Ada"]))
        #expect(try formulaMatches("AND(Score > 2, LEN(Name) = 3)", ["Name": "Ada", "Score": 3]))
        // Braces and bare names name the same field; a name followed by ( is still a function.
        #expect(try Formula.parse("{Score} = Score").fieldReferences.map(\.name) == ["Score", "Score"])
        #expect(try evalFormula("LEN ('abc')") == .number(3))
        // Names that are not one word still need braces.
        #expect(throws: FormulaError.self) { try Formula.parse("Due date = 1") }
    }

    @Test func stringAndFieldEscapes() throws {
        #expect(try evalFormula(#"'it\'s'"#) == .text("it's"))
        #expect(try evalFormula(#""say \"hi\"""#) == .text(#"say "hi""#))
        #expect(try evalFormula(#"'a\nb\tc'"#) == .text("a\nb\tc"))
        #expect(try evalFormula(#"'back\\slash'"#) == .text(#"back\slash"#))
        #expect(try evalFormula(#""it's""#) == .text("it's"))
        #expect(try evalFormula("'é' & \"ü\"") == .text("éü"))
        let formula = try Formula.parse(#"{Weird \} name} & {back\\} & {a\b}"#)
        #expect(formula.fieldReferences.map(\.name) == ["Weird } name", #"back\"#, #"a\b"#])
        #expect(
            try evalFormula(#"{Weird \} name}"#, ["Weird } name": "ok"], types: ["Weird } name": .singleLineText])
                == .text("ok")
        )
    }

    @Test func notEqualSpellings() throws {
        #expect(try Formula.parse("{A} <> 1").expression == Formula.parse("{A} != 1").expression)
        #expect(try evalFormula("1 <> 2") == .bool(true))
        #expect(try evalFormula("1 != 1") == .bool(false))
    }

    @Test func fieldReferencesInSourceOrder() throws {
        let formula = try Formula.parse("IF({B}, {A}, {B} & {Long name})")
        #expect(
            formula.fieldReferences == [
                FormulaFieldReference(name: "B", position: 3), FormulaFieldReference(name: "A", position: 8),
                FormulaFieldReference(name: "B", position: 13), FormulaFieldReference(name: "Long name", position: 19),
            ]
        )
    }

    @Test(
        "Errors carry kind and position",
        arguments: [
            ("FOO(1)", FormulaError.Kind.unknownFunction, 0),
            ("1 + foo(2)", .unknownFunction, 4),
            ("'é' = NOPE()", .unknownFunction, 6),
            ("AND()", .wrongArgumentCount, 0),
            ("1 = NOT(1, 2)", .wrongArgumentCount, 4),
            ("IF({A})", .wrongArgumentCount, 0),
            ("TRUE(1)", .wrongArgumentCount, 0),
            ("FIND('a')", .wrongArgumentCount, 0),
            ("IS_BEFORE('2024-01-01', '2024-01-02', 3)", .wrongArgumentCount, 0),
            ("AND(1, 2", .syntax, 3),
            ("(1 + 2", .syntax, 0),
            ("((1)", .syntax, 0),
            ("(1 2)", .syntax, 3),
            ("'abc", .syntax, 0),
            ("{A} = \"abc", .syntax, 6),
            ("'abc\\'", .syntax, 0),
            ("1 2", .syntax, 2),
            ("{A} = 1)", .syntax, 7),
            ("{A} = 1 {B}", .syntax, 8),
            ("{A", .syntax, 0),
            ("{}", .syntax, 0),
            ("", .syntax, 0),
            ("   ", .syntax, 0),
            ("1 +", .syntax, 3),
            ("!1", .syntax, 0),
            ("1 = = 2", .syntax, 4),
            ("AND(1,)", .syntax, 6),
            ("AND(1 2)", .syntax, 6),
            // A bare name is a field (Airtable's rule), so two in a row, or a name then a value, is not.
            ("Due date = 1", .syntax, 4),
            ("Name 'x'", .syntax, 5),
            ("1 # 2", .syntax, 2),
        ]
    )
    func errorPositions(source: String, kind: FormulaError.Kind, position: Int) {
        let error = formulaParseError(source)
        #expect(error?.kind == kind, "\(source): \(String(describing: error))")
        #expect(error?.position == position, "\(source): \(String(describing: error))")
    }

    @Test func errorMessages() throws {
        #expect(formulaParseError("FOO(1)")?.description == "unknown function FOO at position 0")
        #expect(formulaParseError("LOWER('a', 'b')")?.message == "LOWER expects 1 argument, got 2")
        #expect(formulaParseError("IF(1)")?.message == "IF expects 2 or 3 arguments, got 1")
        #expect(formulaParseError("AND()")?.message == "AND expects at least 1 argument, got 0")
    }

    @Test func validateFindsUnknownFields() throws {
        let types: [String: FieldType] = ["Status": .singleSelect, "Score": .number]
        try Formula.parse("AND({Status} = 1, {Score} > 2)").validate(fieldTypes: types)

        let formula = try Formula.parse("AND({Status} = 1, {Scroe} > 2, {Stauts})")
        #expect(throws: FormulaError(kind: .unknownField, message: "unknown field {Scroe}", position: 18)) {
            try formula.validate(fieldTypes: types)
        }
        do {
            try Formula.parse("{Stauts} = 'Done'").validate(fieldTypes: types)
            Issue.record("validate should have thrown")
        } catch {
            #expect(error.kind == .unknownField)
            #expect(error.description == "unknown field {Stauts} at position 0")
        }
        // Field names are matched exactly.
        #expect(throws: FormulaError.self) { try Formula.parse("{status}").validate(fieldTypes: types) }
    }
}

@Suite("Formula evaluator")
struct FormulaEvaluatorTests {
    @Test func blankSemantics() throws {
        // Blank is 0 for numbers...
        #expect(try formulaMatches("{Score} > 3") == false)
        #expect(try formulaMatches("{Score} < 3") == true)
        #expect(try formulaMatches("{Score} = 0") == true)
        #expect(try evalFormula("{Score} + 2") == .number(2))
        // ...and "" for text.
        #expect(try formulaMatches("{Name} = ''") == true)
        #expect(try formulaMatches("{Name} = BLANK()") == true)
        #expect(try formulaMatches("{Name} != ''") == false)
        #expect(try formulaMatches("{Name} = ''", ["Name": ""]) == true)
        #expect(try formulaMatches("{Name} = BLANK()", ["Name": .null]) == true)
        #expect(try formulaMatches("{Name} = BLANK()", ["Name": "x"]) == false)
        #expect(try formulaMatches("{Name} = ''", ["Name": " "]) == false)
        // As in Airtable, a number 0 equals blank; LEN(x & '') tells them apart.
        #expect(try formulaMatches("{Score} = BLANK()", ["Score": 0]) == true)
        #expect(try formulaMatches("{Score} = BLANK()", ["Score": 5]) == false)
        #expect(try formulaMatches("LEN({Score} & '') = 0", ["Score": 0]) == false)
        #expect(try formulaMatches("LEN({Score} & '') = 0") == true)
        #expect(try evalFormula("BLANK() = BLANK()") == .bool(true))
        #expect(try evalFormula("{Tags}") == .blank)
        #expect(try evalFormula("{Tags}", ["Tags": .strings([])]) == .blank)
        #expect(try evalFormula("{Tags}", ["Tags": .strings(["", ""])]) == .blank)
        #expect(try formulaMatches("{Tags} = BLANK()", ["Tags": .strings(["a"])]) == false)
    }

    @Test func truthiness() throws {
        #expect(try formulaMatches("0") == false)
        #expect(try formulaMatches("''") == false)
        #expect(try formulaMatches("BLANK()") == false)
        #expect(try formulaMatches("FALSE()") == false)
        #expect(try formulaMatches("-1") == true)
        #expect(try formulaMatches("' '") == true)
        #expect(try formulaMatches("{Score}", ["Score": 0]) == false)
        #expect(try formulaMatches("{Score}", ["Score": 0.5]) == true)
        #expect(try formulaMatches("{Done}", ["Done": false]) == false)
        #expect(try formulaMatches("{Done}", ["Done": true]) == true)
        #expect(try formulaMatches("{Tags}", ["Tags": .strings(["a"])]) == true)
        #expect(try formulaMatches("DATETIME_PARSE('2024-01-01')") == true)
        #expect(try formulaMatches("1 / 0") == false)
    }

    @Test func comparisons() throws {
        let alice: [String: FieldValue] = ["Name": "Alice", "Score": 3]
        #expect(try formulaMatches("{Name} = 'Alice'", alice))
        #expect(try formulaMatches("{Name} = 'alice'", alice) == false)
        #expect(try formulaMatches("{Name} < 'B'", alice))
        #expect(try formulaMatches("{Name} > 'B'", alice) == false)
        #expect(try formulaMatches("{Name} >= 'Alice'", alice))
        #expect(try formulaMatches("'Émile' > 'Zoë'"))  // code point order
        // A number field against a numeric string literal coerces the literal.
        #expect(try formulaMatches("{Score} = '3'", alice))
        #expect(try formulaMatches("{Score} > ' 2.5 '", alice))
        #expect(try formulaMatches("{Score} = 'abc'", alice) == false)
        #expect(try formulaMatches("{Score} != 'abc'", alice))
        #expect(try formulaMatches("{Score} < 'abc'", alice) == false)
        #expect(try formulaMatches("{Score} >= 'abc'", alice) == false)
        // Text that reads as a number compares numerically against numbers.
        #expect(try formulaMatches("{Name} = 5", ["Name": "5"]))
        #expect(try formulaMatches("{Name} = 5", ["Name": "5.0"]))
        #expect(try formulaMatches("{Name} > 10", ["Name": "9"]) == false)
        #expect(try formulaMatches("{Name} > '10'", ["Name": "9"]))  // text against text: "9" > "10"
        // Checkboxes compare as 1/0.
        #expect(try formulaMatches("{Done} = 1", ["Done": true]))
        #expect(try formulaMatches("{Done} = TRUE()", ["Done": true]))
        #expect(try formulaMatches("{Done} = 0", ["Done": false]))
        #expect(try formulaMatches("{Done} = FALSE()"))
        #expect(try formulaMatches("{Done} = TRUE()") == false)
        #expect(try formulaMatches("{Done} = 'yes'", ["Done": true]) == false)
        // Numbers
        #expect(try formulaMatches("{Score} = 3.0", alice))
        #expect(try formulaMatches("{Score} > -1", ["Score": -0.5]))
        #expect(try formulaMatches("{Score} = 0", ["Score": .number(-0.0)]))
    }

    @Test func arithmeticAndConcatenation() throws {
        let values: [String: FieldValue] = ["Score": 2.5, "Name": "abc", "Tags": .strings(["a", "b"])]
        #expect(try evalFormula("{Score} * 2", values) == .number(5))
        #expect(try evalFormula("{Score} - 3", values) == .number(-0.5))
        #expect(try evalFormula("-{Score}", values) == .number(-2.5))
        #expect(try evalFormula("'3' + 4") == .number(7))
        #expect(try evalFormula("TRUE() + 1") == .number(2))
        #expect(try evalFormula("{Name} + 1", values) == .blank)
        #expect(try evalFormula("1 / 0") == .blank)
        #expect(try evalFormula("0 / 0") == .blank)
        #expect(try evalFormula("{Score} / {Missing}", values) == .blank)
        #expect(try evalFormula("-'x'") == .blank)
        #expect(try evalFormula("{Score} & ''", values) == .text("2.5"))
        #expect(try evalFormula("{Score} * 2 & ''", values) == .text("5"))
        #expect(try evalFormula("TRUE() & FALSE()") == .text("10"))
        #expect(try evalFormula("{Tags} & '!'", values) == .text("a, b!"))
        #expect(try evalFormula("BLANK() & 'x'") == .text("x"))
        #expect(try evalFormula("DATETIME_PARSE('2024-01-05') & ''") == .text("2024-01-05T00:00:00.000Z"))
    }

    @Test func logicalFunctions() throws {
        #expect(try evalFormula("AND(1, 'x', TRUE())") == .bool(true))
        #expect(try evalFormula("AND(1, '', TRUE())") == .bool(false))
        #expect(try evalFormula("OR(0, '', BLANK())") == .bool(false))
        #expect(try evalFormula("OR(0, 'a')") == .bool(true))
        #expect(try evalFormula("NOT('')") == .bool(true))
        #expect(try evalFormula("NOT(2)") == .bool(false))
        #expect(try evalFormula("IF(1, 'yes', 'no')") == .text("yes"))
        #expect(try evalFormula("IF(0, 'yes', 'no')") == .text("no"))
        #expect(try evalFormula("IF(0, 'yes')") == .blank)
        #expect(try evalFormula("IF({Score} > 1, {Score}, -1)", ["Score": 4]) == .number(4))
        #expect(try evalFormula("TRUE()") == .bool(true))
        #expect(try evalFormula("FALSE()") == .bool(false))
        #expect(try evalFormula("BLANK()") == .blank)
        #expect(try evalFormula("RECORD_ID()", id: "rec0123456789abcd") == .text("rec0123456789abcd"))
        #expect(try formulaMatches("RECORD_ID() = 'recTEST0000000001'"))
    }

    @Test func textFunctions() throws {
        let values: [String: FieldValue] = ["Name": "Hello World", "Tags": .strings(["red", "Blue"])]
        #expect(try evalFormula("FIND('o', {Name})", values) == .number(5))
        #expect(try evalFormula("FIND('o', {Name}, 6)", values) == .number(8))
        #expect(try evalFormula("FIND('o', {Name}, 0)", values) == .number(5))
        #expect(try evalFormula("FIND('o', {Name}, 99)", values) == .number(0))
        #expect(try evalFormula("FIND('O', {Name})", values) == .number(0))
        #expect(try evalFormula("FIND('', {Name})", values) == .number(0))
        #expect(try evalFormula("FIND('x', {Missing})", values) == .number(0))
        #expect(try evalFormula("FIND('ü', 'Grüße, Grüße', 4)") == .number(10))
        #expect(try evalFormula("SEARCH('WORLD', {Name})", values) == .number(7))
        #expect(try evalFormula("SEARCH('o', {Name}, 6)", values) == .number(8))
        #expect(try evalFormula("SEARCH('xyz', {Name})", values) == .blank)
        #expect(try evalFormula("SEARCH('É', 'café')") == .number(4))
        #expect(try evalFormula("LOWER({Name})", values) == .text("hello world"))
        #expect(try evalFormula("UPPER({Name})", values) == .text("HELLO WORLD"))
        #expect(try evalFormula("LOWER('ÉMILE')") == .text("émile"))
        #expect(try evalFormula("UPPER('straße')") == .text("STRASSE"))
        #expect(try evalFormula("LOWER({Missing})") == .text(""))
        #expect(try evalFormula("LEN({Name})", values) == .number(11))
        #expect(try evalFormula("LEN('é')") == .number(1))
        #expect(try evalFormula("LEN('e\u{301}')") == .number(2))
        #expect(try evalFormula("LEN({Missing})") == .number(0))
        #expect(try evalFormula("LEN(12.5)") == .number(4))
        #expect(try evalFormula("TRIM('  a b \t\n')") == .text("a b"))
        #expect(try evalFormula("TRIM('   ')") == .text(""))
        // Multi-value fields are joined with ", " for text functions.
        #expect(try evalFormula("FIND('Blue', {Tags})", values) == .number(6))
        #expect(try evalFormula("SEARCH('blue', {Tags})", values) == .number(6))
        #expect(try evalFormula("LEN({Tags})", values) == .number(9))
        #expect(try evalFormula("LOWER({Tags})", values) == .text("red, blue"))
        #expect(try formulaMatches("{Tags} = 'red, Blue'", values))
        #expect(try formulaMatches("FIND('a', {Tags})", values) == false)
    }

    @Test func multiValueFields() throws {
        let attachment = Attachment(id: FileID.generate(), filename: "report.pdf")
        let values: [String: FieldValue] = [
            "Links": .strings(["recA", "recB"]), "Files": .attachments([attachment]),
        ]
        #expect(try evalFormula("{Links}", values) == .list(["recA", "recB"]))
        #expect(try evalFormula("{Files}", values) == .list(["report.pdf"]))
        #expect(try formulaMatches("FIND('recB', {Links})", values))
        #expect(try formulaMatches("{Links} = 1", values) == false)
        #expect(try formulaMatches("{Links} != 1", values))
        #expect(try formulaMatches("{Files} = BLANK()", ["Files": .attachments([])]))
    }

    @Test func dates() throws {
        let values: [String: FieldValue] = ["Due": "2024-01-05", "When": "2024-01-05T10:00:00.000Z"]
        #expect(try formulaMatches("IS_BEFORE({Due}, '2024-06-01')", values))
        #expect(try formulaMatches("IS_AFTER({Due}, '2024-06-01')", values) == false)
        #expect(try formulaMatches("IS_AFTER({When}, {Due})", values))
        #expect(try formulaMatches("IS_BEFORE({When}, '2024-01-05T10:00:00Z')", values) == false)
        #expect(try formulaMatches("IS_BEFORE({When}, '2024-01-05T10:00:00.001Z')", values))
        #expect(try formulaMatches("IS_BEFORE({Missing}, '2024-01-01')", values) == false)
        #expect(try formulaMatches("IS_AFTER('2024-01-01', {Missing})", values) == false)
        #expect(try formulaMatches("IS_BEFORE('garbage', '2024-01-01')") == false)
        #expect(try formulaMatches("DATETIME_PARSE({Due}) < DATETIME_PARSE('2024-02-01')", values))
        #expect(try formulaMatches("DATETIME_PARSE({Due}) = '2024-01-05T00:00:00Z'", values))
        #expect(try formulaMatches("DATETIME_PARSE({Due}) = BLANK()", values) == false)
        // pyairtable sends datetimes as DATETIME_PARSE('…'): a dateTime cell compares as the instant
        // it names, whatever its text (milliseconds, offset), and reads as its ISO text elsewhere.
        #expect(try formulaMatches("{When} = DATETIME_PARSE('2024-01-05T12:00:00+02:00')", values))
        #expect(try formulaMatches("When > DATETIME_PARSE('2024-01-05T09:59:59.999Z')", values))
        #expect(try formulaMatches("{When} >= DATETIME_PARSE('2024-01-05T10:00:00.001Z')", values) == false)
        #expect(try formulaMatches("{When} < {Due}", values) == false)
        #expect(try evalFormula("{When} & ''", values) == .text("2024-01-05T10:00:00.000Z"))
        #expect(try formulaMatches("FIND('2024-01-05', {When}) = 1", values))
        #expect(try evalFormula("LEN({When})", values) == .number(24))
        #expect(
            try evalFormula("DATETIME_PARSE('2024-01-05T10:00:00+02:00')")
                == .date(try #require(isoDate("2024-01-05T08:00:00Z")))
        )
        #expect(
            try evalFormula("DATETIME_PARSE('2024-01-05 10:30')")
                == .date(try #require(isoDate("2024-01-05T10:30:00Z")))
        )
        #expect(
            try evalFormula("DATETIME_PARSE('21/11/2026', 'DD/MM/YYYY')") == .date(try #require(isoDate("2026-11-21")))
        )
        #expect(
            try evalFormula("DATETIME_PARSE('1/2/2026 18:05', 'M/D/YYYY HH:mm')")
                == .date(try #require(isoDate("2026-01-02T18:05:00Z")))
        )
        #expect(try evalFormula("DATETIME_PARSE('2024-02-30')") == .blank)
        #expect(try evalFormula("DATETIME_PARSE('2024-02-29')") == .date(try #require(isoDate("2024-02-29T00:00:00Z"))))
        #expect(try evalFormula("DATETIME_PARSE('2023-02-29')") == .blank)
        #expect(try evalFormula("DATETIME_PARSE('not a date')") == .blank)
        #expect(try evalFormula("DATETIME_PARSE('2024-01-05', 'DD/MM/YYYY')") == .blank)
        #expect(try evalFormula("DATETIME_PARSE({Missing})") == .blank)
        #expect(FormulaValue.parseDate("1969-12-31T23:59:59Z") == Date(timeIntervalSince1970: -1))
        #expect(FormulaValue.parseDate("2024-01-05T10:00:00.250Z") == Date(timeIntervalSince1970: 1_704_448_800.25))
    }

    @Test func fieldsReadByType() throws {
        // A value of the wrong shape for its field's type is blank.
        #expect(try evalFormula("{Score}", ["Score": "10"]) == .blank)
        #expect(try formulaMatches("{Score} > 3", ["Score": "10"]) == false)
        #expect(try evalFormula("{Name}", ["Name": 5]) == .blank)
        #expect(try evalFormula("{Done}", ["Done": "true"]) == .blank)
        #expect(try evalFormula("{Done}", ["Done": 1]) == .blank)
        #expect(try evalFormula("{Tags}", ["Tags": "a"]) == .blank)
        #expect(try evalFormula("{Due}", ["Due": "2024-01-05"]) == .text("2024-01-05"))
        // Without a type, values are read by shape.
        #expect(try evalFormula("{X}", ["X": "10"], types: [:]) == .text("10"))
        #expect(try evalFormula("{X}", ["X": 10], types: [:]) == .number(10))
        #expect(try evalFormula("{X}", ["X": true], types: [:]) == .bool(true))
        #expect(try evalFormula("{X}", ["X": ""], types: [:]) == .blank)
        #expect(try evalFormula("{X}", ["X": .strings(["a"])], types: [:]) == .list(["a"]))
        #expect(try evalFormula("{X}", ["X": 1], types: ["X": FieldType(rawValue: "rating")]) == .number(1))
    }

    @Test func numberParsingAndFormatting() {
        #expect(FormulaValue.parseNumber("3") == 3)
        #expect(FormulaValue.parseNumber(" -2.5 ") == -2.5)
        #expect(FormulaValue.parseNumber("+.5") == 0.5)
        #expect(FormulaValue.parseNumber("1e3") == 1000)
        #expect(FormulaValue.parseNumber("5.") == 5)
        for invalid in ["", " ", ".", "abc", "1e", "0x10", "nan", "inf", "1,5", "--1", "1 2", "1e999"] {
            #expect(FormulaValue.parseNumber(invalid) == nil, "\(invalid)")
        }
        #expect(FormulaValue.format(3) == "3")
        #expect(FormulaValue.format(-0.0) == "0")
        #expect(FormulaValue.format(2.5) == "2.5")
        #expect(FormulaValue.format(1e20) == "1e+20")
    }

    @Test func neverCrashesOnSurprises() throws {
        let values: [String: FieldValue] = [
            "Name": .strings(["x"]), "Score": .attachments([]), "Done": .null, "Tags": 3, "Due": true,
        ]
        let sources = [
            "AND({Name}, {Score}, {Done}, {Tags}, {Due})", "FIND({Score}, {Tags}, {Due})",
            "SEARCH('x', {Name}, 1)", "IS_BEFORE({Score}, {Tags})", "DATETIME_PARSE({Score}, {Name})",
            "LEN({Files}) + {Tags} / {Done}", "FIND('a', 'abc', 1 / 0)", "FIND('a', 'abc', -5)",
            "99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999",
        ]
        for source in sources {
            _ = try evalFormula(source, values)
        }
        #expect(try evalFormula("FIND('c', 'abc', 99999999999999999999)") == .number(0))
        #expect(
            try evalFormula(
                "99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999"
            ) == .blank
        )
    }
}
