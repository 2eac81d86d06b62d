import ArgumentParser
import OfflineQueue
import PyAirtableClient
import PyAirtableModels

/// A value read from one command-line word that says why it refuses a word: ArgumentParser prints
/// the reason after `The value '…' is invalid for '<name>'`, and the command exits with status 2.
///
/// An `@Argument` or `@Option` of such a type is parsed once, by its type, before `validate()`.
protocol ValidatedArgument: ExpressibleByArgument, Sendable {
    /// Reads `argument`, throwing an error whose description says what a valid value looks like.
    init(validatingArgument argument: String) throws
}

extension ValidatedArgument {
    init?(argument: String) {
        try? self.init(validatingArgument: argument)
    }

    /// Reads a value written inside a longer command-line value, such as the linked table of
    /// `--field-def Project:multipleRecordLinks:tbl…`.
    /// - Throws: `ValidationError` saying what a valid value looks like.
    static func argument(_ string: String) throws -> Self {
        do {
            return try Self(validatingArgument: string)
        } catch {
            throw ValidationError(String(describing: error))
        }
    }
}

extension Identifier: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(argument)
    }
}

extension Identifier: ValidatedArgument {
    init(validatingArgument argument: String) throws {
        try self.init(validating: argument)
    }
}

/// A record named on the command line: a record id, or the temporary id (`tmp_…`) that a create
/// queued offline printed. Writes naming a temporary id queue behind that create and go out with
/// the server's id once it lands.
struct RecordArgument: ValidatedArgument {
    /// The record id, or the temporary id.
    var reference: RecordReference

    init(validatingArgument argument: String) throws {
        if let temporary = TemporaryRecordID(argument) {
            reference = .temporary(temporary)
        } else {
            reference = .server(try RecordID(validating: argument))
        }
    }
}

// The initializers below take precedence over ArgumentParser's for `ExpressibleByArgument` values
// (`ValidatedArgument` refines it), so that a refused word is reported with its reason rather
// than a bare "invalid".

extension Argument {
    /// A required argument read by its type, reporting why a word is refused.
    init(help: ArgumentHelp? = nil, completion: CompletionKind? = nil) where Value: ValidatedArgument {
        self.init(help: help, completion: completion, transform: { try Value(validatingArgument: $0) })
    }
}

extension Option {
    /// A required option read by its type, reporting why a word is refused.
    init(
        name: NameSpecification = .long,
        parsing parsingStrategy: SingleValueParsingStrategy = .next,
        help: ArgumentHelp? = nil,
        completion: CompletionKind? = nil
    ) where Value: ValidatedArgument {
        self.init(
            name: name,
            parsing: parsingStrategy,
            help: help,
            completion: completion,
            transform: { try Value(validatingArgument: $0) }
        )
    }

    /// An optional option read by its type, reporting why a word is refused.
    init<Wrapped: ValidatedArgument>(
        name: NameSpecification = .long,
        parsing parsingStrategy: SingleValueParsingStrategy = .next,
        help: ArgumentHelp? = nil,
        completion: CompletionKind? = nil
    ) where Value == Wrapped? {
        self.init(
            name: name,
            parsing: parsingStrategy,
            help: help,
            completion: completion,
            transform: { try Wrapped(validatingArgument: $0) }
        )
    }

    /// A repeatable option read by its type, reporting why a word is refused.
    init<Element: ValidatedArgument>(
        wrappedValue: [Element],
        name: NameSpecification = .long,
        parsing parsingStrategy: ArrayParsingStrategy = .singleValue,
        help: ArgumentHelp? = nil,
        completion: CompletionKind? = nil
    ) where Value == [Element] {
        self.init(
            wrappedValue: wrappedValue,
            name: name,
            parsing: parsingStrategy,
            help: help,
            completion: completion,
            transform: { try Element(validatingArgument: $0) }
        )
    }
}
