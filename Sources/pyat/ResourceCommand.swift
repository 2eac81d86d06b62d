import ArgumentParser
import PyAirtableClient
import PyAirtableModels

/// A subcommand that works through a client of the server the global options name.
///
/// The `list`, `get`, `create`, `update` and `delete` subcommands of workspaces, bases, tables,
/// fields, views and webhooks adopt one of the protocols below: each states its arguments and the
/// one client call it makes, and the protocol's `run()` connects, calls and prints the answer in
/// the chosen `--format`.
protocol ClientCommand: AsyncParsableCommand {
    /// `--server`, `--token`, `--format` and the other options of every command that talks to a server.
    var options: GlobalOptions { get }
}

/// A subcommand that prints a list of resources with their default columns.
protocol ListCommand: ClientCommand {
    associatedtype Item: Tabular
    /// Asks the server for the resources to print.
    func items(from client: PyAirtableClient) async throws -> [Item]
}

extension ListCommand {
    func run() async throws {
        let list = try await options.withClient { try await items(from: $0) }
        try options.output.list(list)
    }
}

/// A subcommand that prints one resource with its default columns: the one it reads, creates or changes.
protocol ItemCommand: ClientCommand {
    associatedtype Item: Tabular
    /// Asks the server for the resource to print (reading, creating or changing it).
    func item(from client: PyAirtableClient) async throws -> Item
}

extension ItemCommand {
    func run() async throws {
        let answer = try await options.withClient { try await item(from: $0) }
        try options.output.item(answer)
    }
}

/// A subcommand that deletes one resource and reports it: `Deleted workspace wsp….` in `table`
/// format, `{"deleted": true, "id": …}` in the others.
protocol DeleteCommand: ClientCommand {
    associatedtype Kind: IdentifierKind
    /// What the report calls the resource, such as `workspace`.
    static var resourceName: String { get }
    /// The resource to delete.
    var id: Identifier<Kind> { get }
    /// Asks the server to delete the resource.
    func delete(from client: PyAirtableClient) async throws
}

extension DeleteCommand {
    func run() async throws {
        try await options.withClient { try await delete(from: $0) }
        try options.output.deleted(id.rawValue, kind: Self.resourceName)
    }
}

/// The rule every `--name` of a resource follows.
enum ResourceName {
    /// Refuses an empty `--name` (a `nil` one, not given, is left to the command).
    static func validate(_ name: String?) throws {
        if name?.isEmpty == true { throw ValidationError("--name must not be empty") }
    }
}
