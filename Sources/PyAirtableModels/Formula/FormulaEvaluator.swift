/// A record a formula can be evaluated against.
public protocol FormulaRecord {
    /// The record's id, the value of `RECORD_ID()`.
    var recordID: String { get }
    /// The value of the field named `name`; `nil` when the field is absent or blank.
    func value(ofField name: String) -> FieldValue?
    /// The type of the field named `name`, or `nil` when unknown (values are then read by their shape).
    func type(ofField name: String) -> FieldType?
}

/// A plain ``FormulaRecord``: an id, values and types keyed by field name.
public struct FormulaRecordValues: FormulaRecord, Sendable, Hashable {
    /// The record's id.
    public var recordID: String
    /// The cell values, keyed by field name; a missing name is blank.
    public var values: [String: FieldValue]
    /// The field types, keyed by field name.
    public var types: [String: FieldType]

    /// Makes a record.
    public init(recordID: String, values: [String: FieldValue] = [:], types: [String: FieldType] = [:]) {
        self.recordID = recordID
        self.values = values
        self.types = types
    }

    /// Makes a record; the same as ``init(recordID:values:types:)``.
    public init(id: String, values: [String: FieldValue], types: [String: FieldType]) {
        self.init(recordID: id, values: values, types: types)
    }

    /// The value of the field named `name`, or `nil`.
    public func value(ofField name: String) -> FieldValue? { values[name] }
    /// The type of the field named `name`, or `nil`.
    public func type(ofField name: String) -> FieldType? { types[name] }
}

extension FormulaExpression {
    /// Evaluates this expression against `record`. Never fails: type surprises give blank or false,
    /// as ``Formula`` describes.
    public func evaluate(_ record: some FormulaRecord) -> FormulaValue {
        FormulaEvaluator(record: record).evaluate(self)
    }
}

/// Evaluates expressions against one record.
struct FormulaEvaluator<Record: FormulaRecord> {
    let record: Record

    func evaluate(_ expression: FormulaExpression) -> FormulaValue {
        switch expression.node {
        case .number(let number):
            return .number(number)
        case .string(let text):
            return .text(text)
        case .field(let name):
            return FormulaValue(field: record.value(ofField: name), type: record.type(ofField: name))
        case .negate(let operand):
            guard let number = evaluate(operand).numericValue else { return .blank }
            return Self.finite(-number)
        case .binary(let op, let lhs, let rhs):
            return binary(op, evaluate(lhs), evaluate(rhs))
        case .call(let function, let arguments):
            return call(function, arguments)
        }
    }

    private static func finite(_ number: Double) -> FormulaValue {
        number.isFinite ? .number(number) : .blank
    }

    private func binary(_ op: FormulaOperator, _ lhs: FormulaValue, _ rhs: FormulaValue) -> FormulaValue {
        switch op {
        case .concatenate:
            return .text(lhs.textValue + rhs.textValue)
        case .add, .subtract, .multiply, .divide:
            guard let x = lhs.numericValue, let y = rhs.numericValue else { return .blank }
            switch op {
            case .add: return Self.finite(x + y)
            case .subtract: return Self.finite(x - y)
            case .multiply: return Self.finite(x * y)
            default: return y == 0 ? .blank : Self.finite(x / y)
            }
        case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual:
            return .bool(FormulaValue.compare(op, lhs, rhs))
        }
    }

    private func call(_ function: FormulaFunction, _ arguments: [FormulaExpression]) -> FormulaValue {
        func argument(_ index: Int) -> FormulaValue {
            index < arguments.count ? evaluate(arguments[index]) : .blank
        }
        switch function {
        case .and:
            return .bool(arguments.allSatisfy { evaluate($0).isTruthy })
        case .or:
            return .bool(arguments.contains { evaluate($0).isTruthy })
        case .not:
            return .bool(!argument(0).isTruthy)
        case .if:
            return argument(0).isTruthy ? argument(1) : argument(2)
        case .true:
            return .bool(true)
        case .false:
            return .bool(false)
        case .blank:
            return .blank
        case .recordID:
            return .text(record.recordID)
        case .find, .search:
            let start = FormulaValue.searchStart(arguments.count > 2 ? argument(2) : nil)
            let position = FormulaValue.position(
                of: argument(0).textValue,
                in: argument(1).textValue,
                from: start,
                caseInsensitive: function == .search
            )
            if let position { return .number(Double(position)) }
            return function == .find ? .number(0) : .blank
        case .lower:
            return .text(argument(0).textValue.lowercased())
        case .upper:
            return .text(argument(0).textValue.uppercased())
        case .len:
            return .number(Double(argument(0).textValue.unicodeScalars.count))
        case .trim:
            return .text(FormulaValue.trim(argument(0).textValue))
        case .isBefore, .isAfter:
            guard let x = argument(0).dateValue, let y = argument(1).dateValue else { return .bool(false) }
            return .bool(function == .isBefore ? x < y : x > y)
        case .datetimeParse:
            let value = argument(0)
            if case .date = value { return value }
            let format = arguments.count > 1 ? argument(1).textValue : nil
            guard let date = FormulaValue.parseDate(value.textValue, format: format) else { return .blank }
            return .date(date)
        }
    }
}
