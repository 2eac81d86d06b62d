import Foundation
import PropertyBased
import Testing

@testable import PyAirtableModels

/// Deep formula shapes: `depth` levels of one construct around `{A}`.
enum DeepFormula: String, CaseIterable, Sendable {
    case parentheses, not, ifCondition, ifBranch, negation, lower, and, chain, concatenation

    func source(depth: Int) -> String {
        switch self {
        case .parentheses: String(repeating: "(", count: depth) + "{A}" + String(repeating: ")", count: depth)
        case .not: String(repeating: "NOT(", count: depth) + "{A}" + String(repeating: ")", count: depth)
        case .ifCondition: String(repeating: "IF(", count: depth) + "{A}" + String(repeating: ", 1, 0)", count: depth)
        case .ifBranch: String(repeating: "IF({A}, ", count: depth) + "{A}" + String(repeating: ")", count: depth)
        case .negation: String(repeating: "-", count: depth) + "{A}"
        case .lower: String(repeating: "LOWER(", count: depth) + "{A}" + String(repeating: ")", count: depth)
        case .and: String(repeating: "AND(", count: depth) + "{A}" + String(repeating: ")", count: depth)
        // `depth` operators: the tree is depth + 1 levels deep.
        case .chain: "{A}" + String(repeating: "+1", count: depth)
        case .concatenation: "{A}" + String(repeating: " & 'x'", count: depth)
        }
    }
}

/// The height of a tree, walked without recursion (the thing under test is the recursion bound).
func treeHeight(_ expression: FormulaExpression) -> Int {
    var deepest = 0
    var stack: [(FormulaExpression, Int)] = [(expression, 1)]
    while let (node, depth) = stack.popLast() {
        deepest = max(deepest, depth)
        for child in node.children { stack.append((child, depth + 1)) }
    }
    return deepest
}

private func parseError(_ source: String, limits: Formula.Limits = .default) -> FormulaError? {
    do {
        _ = try Formula.parse(source, limits: limits)
        return nil
    } catch {
        return error
    }
}

@Suite("Formula limits")
struct FormulaLimitsTests {
    @Test(arguments: DeepFormula.allCases)
    func hundredThousandLevelsAreRefusedWithAPosition(shape: DeepFormula) throws {
        let source = shape.source(depth: 100_000)
        // With the defaults, the length limit answers first.
        let long = try #require(parseError(source))
        #expect(long.kind == .limitExceeded, "\(shape): \(long)")
        #expect(long.position == Formula.Limits.defaultMaximumLength)
        // Without length and token limits, the depth limit still stops the parser early.
        let unbounded = Formula.Limits(maximumLength: .max, maximumTokens: .max)
        let error = try #require(parseError(source, limits: unbounded))
        #expect(error.kind == .limitExceeded, "\(shape): \(error)")
        #expect(error.message.contains("deeper than \(Formula.Limits.defaultMaximumDepth) levels"))
        #expect(error.position > 0 && error.position < 2_000, "\(shape): \(error.position)")
    }

    @Test func theDepthErrorPointsWhereTheLimitIsCrossed() throws {
        let limit = Formula.Limits.defaultMaximumDepth
        // The group opened at offset `limit` is the first one level too deep.
        #expect(parseError(DeepFormula.parentheses.source(depth: 1000))?.position == limit)
        // "{A}+1+1…": the limit-th operator makes the tree limit + 1 deep.
        let chain = try #require(parseError(DeepFormula.chain.source(depth: 1000)))
        #expect(chain.position == 3 + 2 * (limit - 1))
        let negation = try #require(parseError(DeepFormula.negation.source(depth: 1000)))
        #expect(negation.position == limit)
    }

    /// At exactly the limit, every stage that walks the tree works: validation, evaluation, field
    /// references, hashing, equality and freeing the tree.
    @Test(arguments: DeepFormula.allCases)
    func formulasAtTheLimitWorkInEveryStage(shape: DeepFormula) throws {
        let limit = Formula.Limits.defaultMaximumDepth
        let depth = limit - 1
        let source = shape.source(depth: depth)
        let formula = try Formula.parse(source)
        #expect(treeHeight(formula.expression) <= limit)
        try formula.validate(fieldTypes: ["A": .number])
        _ = formula.evaluate(FormulaRecordValues(recordID: "rec1", values: ["A": .number(1)], types: ["A": .number]))
        #expect(formula.fieldReferences.count >= 1)
        #expect(Set([formula, try Formula.parse(source)]).count == 1)
        // One level more is refused.
        #expect(parseError(shape.source(depth: depth + 1))?.kind == .limitExceeded, "\(shape)")
    }

    @Test func lengthAndTokenLimits() throws {
        let limits = Formula.Limits(maximumLength: 20, maximumTokens: 5, maximumDepth: 8)
        let long = try #require(parseError("{A} = '" + String(repeating: "x", count: 30) + "'", limits: limits))
        #expect(long.kind == .limitExceeded)
        #expect(long.position == 20)
        #expect(long.message.contains("longer than 20 characters"))
        // Multi-byte characters count once.
        #expect(parseError("'" + String(repeating: "é", count: 18) + "'", limits: limits) == nil)

        let tokens = try #require(parseError("1+2+3+4", limits: limits))
        #expect(tokens.kind == .limitExceeded)
        #expect(tokens.position == 5)  // the sixth token, `+`
        #expect(tokens.message.contains("more than 5 tokens"))
        #expect(parseError("1+2+3", limits: limits) == nil)

        let shallow = Formula.Limits(maximumDepth: 8)
        let deep = try #require(parseError(DeepFormula.not.source(depth: 8), limits: shallow))
        #expect(deep.kind == .limitExceeded)
        #expect(deep.message.contains("deeper than 8 levels"))
        #expect(parseError(DeepFormula.not.source(depth: 7), limits: shallow) == nil)
    }

    @Test func defaultsAcceptAWideFilterTheLengthOfALongURL() throws {
        // About 15,000 characters: 1,400 alternatives in one OR, 5,600 tokens, 3 levels deep.
        let alternatives = (0..<1400).map { "{A}='v\($0)'" }.joined(separator: ",")
        let source = "OR(\(alternatives))"
        #expect(source.count > 14_000)
        let formula = try Formula.parse(source)
        #expect(formula.matches(FormulaRecordValues(recordID: "rec1", values: ["A": .string("v1399")])))
        #expect(!formula.matches(FormulaRecordValues(recordID: "rec1", values: ["A": .string("w")])))
    }
}

/// Pieces random formulas are made of: well-formed fragments, and ones that break the grammar.
private let formulaPieces: [String] = [
    "(", ")", "(", ")", ",", "{A}", "{B}", "{Score}", "1", "2.5", ".5", "'x'", "\"y\"", "+", "-", "*", "/", "&",
    "=", "!=", "<>", "<", ">=", "NOT(", "AND(", "OR(", "IF(", "LOWER(", "LEN(", "FIND('a',", "TRUE()",
    "BLANK()", "RECORD_ID()", " ", "{", "}", "'", "\\", "é", "DATETIME_PARSE(", "IS_BEFORE(", "FOO(",
]

@Suite("Formula parser properties")
struct FormulaPropertyTests {
    /// Whatever the input, parsing ends; an accepted formula is within the depth limit and every stage
    /// walks it; a refused one points inside the source.
    @Test func parsingNeverCrashesAndAcceptedTreesAreBounded() async {
        let limits = Formula.Limits(maximumLength: 400, maximumTokens: 120, maximumDepth: 12)
        let source = Gen<String?>.element(of: formulaPieces).array(of: 0...160).map { $0.compactMap { $0 }.joined() }
        await propertyCheck(count: 400, input: source) { text in
            do throws(FormulaError) {
                let formula = try Formula.parse(text, limits: limits)
                #expect(treeHeight(formula.expression) <= limits.maximumDepth, "\(text)")
                let record = FormulaRecordValues(recordID: "rec1", values: ["A": .string("x"), "Score": .number(3)])
                _ = formula.evaluate(record)
                _ = formula.fieldReferences
            } catch {
                #expect(error.position >= 0 && error.position <= text.count, "\(text): \(error)")
            }
        }
    }

    /// Tightening the depth limit never accepts a formula the tree of which is deeper.
    @Test func theDepthLimitMatchesTheTreeItBuilds() async {
        let input = Gen<String?>.element(of: formulaPieces).array(of: 1...80).map { $0.compactMap { $0 }.joined() }
        await propertyCheck(count: 300, input: input, Gen.int(in: 1...10)) { text, depth in
            guard let formula = try? Formula.parse(text, limits: Formula.Limits(maximumDepth: depth)) else { return }
            #expect(treeHeight(formula.expression) <= depth, "\(text) at \(depth)")
        }
    }
}
