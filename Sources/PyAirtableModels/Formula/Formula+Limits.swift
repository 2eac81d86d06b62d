extension Formula {
    /// How large and how deeply nested a formula ``Formula/parse(_:limits:)`` accepts.
    ///
    /// Formulas come from untrusted users (a records list's `filter=`, a view's filter), and every
    /// stage after the parser — validation, evaluation, hashing, the server's SQL compiler — walks the
    /// tree recursively. The parser refuses, with ``FormulaError/Kind-swift.enum/limitExceeded`` and
    /// the position where the limit was crossed, any formula past these limits, so every tree it
    /// builds is at most ``maximumDepth`` deep and those stages stay within a small stack.
    ///
    /// ```swift
    /// var limits = Formula.Limits()
    /// limits.maximumDepth = 32
    /// let formula = try Formula.parse("NOT({Done})", limits: limits)
    /// ```
    public struct Limits: Sendable, Hashable {
        /// The longest formula, in characters (default 32,768: a 16,000-character URL's filter fits).
        public var maximumLength: Int
        /// The most tokens (names, literals, operators, parentheses, commas) in one formula
        /// (default 16,384).
        public var maximumTokens: Int
        /// The deepest nesting (default 128). Each parenthesised group, function call, unary minus
        /// and binary operator is one level over its operands, so `NOT(NOT({A}))` is 3 deep and a
        /// chain `1+1+1` is 3 deep (operators are left-associative: `(1+1)+1`).
        public var maximumDepth: Int

        /// Limits with the documented defaults unless given.
        public init(
            maximumLength: Int = Limits.defaultMaximumLength,
            maximumTokens: Int = Limits.defaultMaximumTokens,
            maximumDepth: Int = Limits.defaultMaximumDepth
        ) {
            self.maximumLength = maximumLength
            self.maximumTokens = maximumTokens
            self.maximumDepth = maximumDepth
        }

        /// The default ``maximumLength``: 32,768 characters.
        public static let defaultMaximumLength = 32_768
        /// The default ``maximumTokens``: 16,384.
        public static let defaultMaximumTokens = 16_384
        /// The default ``maximumDepth``: 128 levels.
        public static let defaultMaximumDepth = 128

        /// The defaults.
        public static let `default` = Limits()
    }
}
