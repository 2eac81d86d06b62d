import ArgumentParser
import PyAirtableClient
import PyAirtableModels

/// A subcommand that works through a client of the server the global options name.
///
/// The `list`, `get`, `create`, `update` and `delete` subcommands of workspaces, bases, tables,
/// fields, views, webhooks and files adopt the protocol below, or are the shared generic subcommands
/// of `ResourceSubcommands.swift`: each states its arguments and the one client call it makes, and
/// `run()` connects, calls and prints the answer in the chosen `--format`.
protocol ClientCommand: AsyncParsableCommand {
    /// `--server`, `--token`, `--format` and the other options of every command that talks to a server.
    var options: GlobalOptions { get }
}

/// A subcommand that asks the server for one resource or a list of them (reading, creating or
/// changing) and prints the answer with its default columns.
protocol ResourceCommand: ClientCommand {
    associatedtype Answer: CommandOutput
    /// Asks the server for what to print.
    func answer(from client: PyAirtableClient) async throws -> Answer
}

extension ResourceCommand {
    func run() async throws {
        let result = try await options.withClient { try await answer(from: $0) }
        try result.write(to: options.output)
    }
}

/// What a ``ResourceCommand`` prints: a resource (any ``Tabular``), or a list of them.
protocol CommandOutput {
    /// Writes this in the output's format, with the default columns.
    func write(to output: OutputWriter) throws
}

extension Array: CommandOutput where Element: Tabular {
    func write(to output: OutputWriter) throws {
        try output.list(self)
    }
}

/// The rule every `--name` of a resource follows.
enum ResourceName {
    /// Refuses an empty `--name` (a `nil` one, not given, is left to the command).
    static func validate(_ name: String?) throws {
        if name?.isEmpty == true { throw ValidationError("--name must not be empty") }
    }
}
