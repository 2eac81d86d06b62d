/// A formula that cannot be parsed or does not fit the table it is run against.
///
/// ```swift
/// do {
///     let formula = try Formula.parse("{Stauts} = 'Done'")
///     try formula.validate(fieldTypes: ["Status": .singleSelect])
/// } catch {
///     print(error)   // unknown field {Stauts} at position 0
/// }
/// ```
public struct FormulaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// The text is not a formula: an unexpected or missing token, an unterminated string, field
        /// reference or parenthesis, an empty formula.
        case syntax
        /// A `{Field}` reference names no field of the table (see ``Formula/validate(fieldTypes:)``).
        case unknownField
        /// A call names no function of the supported set.
        case unknownFunction
        /// A function is called with too few or too many arguments.
        case wrongArgumentCount
        /// The formula is longer, has more tokens or nests deeper than ``Formula/Limits`` allow.
        case limitExceeded
    }

    /// What went wrong.
    public var kind: Kind
    /// Human text, such as `unknown field {Stauts}`.
    public var message: String
    /// The 0-based offset, in characters (`Character`s of the source `String`), where the problem starts.
    public var position: Int

    /// Makes an error.
    public init(kind: Kind, message: String, position: Int) {
        self.kind = kind
        self.message = message
        self.position = position
    }

    /// The message followed by its position, such as `unknown field {Stauts} at position 5`.
    public var description: String { "\(message) at position \(position)" }
}
