import ArgumentParser
import PyAirtableClient
import PyAirtableModels

/// What the shared `get`, `list`, `update` (rename) and `delete` subcommands know of a resource: its
/// name, its id, and the one client call each makes. Each resource command (`pyat bases`, `pyat
/// tables`, …) describes itself once and lists the shared subcommands it has beside its own.
protocol CommandResource {
    /// What the answers print.
    associatedtype Item: Tabular & Sendable
    /// The kind of the resource's id.
    associatedtype Kind: IdentifierKind
    /// The name in help, messages and reports, such as `base`.
    static var name: String { get }
    /// The help of the id argument, such as "The base id (app…)."
    static var idHelp: String { get }
}

/// A resource `get` shows.
protocol GettableResource: CommandResource {
    static var getAbstract: String { get }
    static func get(_ id: Identifier<Kind>, from client: PyAirtableClient) async throws -> Item
}

/// A resource `list` lists within a parent (the bases of a workspace, the fields of a table).
protocol ListableResource: CommandResource {
    /// The parent's id, such as `WorkspaceID`.
    associatedtype Parent: ValidatedArgument
    static var listAbstract: String { get }
    /// The parent argument's name in help, such as `workspace`.
    static var parentName: String { get }
    static var parentHelp: String { get }
    static func list(in parent: Parent, from client: PyAirtableClient) async throws -> [Item]
}

/// A resource `update --name` renames.
protocol RenamableResource: CommandResource {
    static var renameAbstract: String { get }
    static func rename(
        _ id: Identifier<Kind>,
        to name: String,
        ifVersion: Int?,
        from client: PyAirtableClient
    ) async throws -> Item
}

/// A resource `delete` deletes.
protocol DeletableResource: CommandResource {
    /// ``VersionPrecondition`` (`--if-version`), or ``NoPrecondition`` for resources without versions.
    associatedtype Precondition: DeletePrecondition
    static var deleteAbstract: String { get }
    static func delete(_ id: Identifier<Kind>, ifVersion: Int?, from client: PyAirtableClient) async throws
}

/// The options a delete takes besides the id: `--if-version`, or none.
protocol DeletePrecondition: ParsableArguments {
    var ifVersion: Int? { get }
}

extension VersionPrecondition: DeletePrecondition {}

/// No options: for resources without versions.
struct NoPrecondition: DeletePrecondition {
    var ifVersion: Int? { nil }
}

/// `pyat <resources> get ID`.
struct GetCommand<Resource: GettableResource>: ResourceCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "get", abstract: Resource.getAbstract)
    }

    @OptionGroup(title: "Global options") var options: GlobalOptions

    @Argument(help: ArgumentHelp(Resource.idHelp, valueName: Resource.name))
    var id: Identifier<Resource.Kind>

    func answer(from client: PyAirtableClient) async throws -> Resource.Item {
        try await Resource.get(id, from: client)
    }
}

/// `pyat <resources> list PARENT`.
struct ListCommand<Resource: ListableResource>: ResourceCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "list", abstract: Resource.listAbstract)
    }

    @OptionGroup(title: "Global options") var options: GlobalOptions

    @Argument(help: ArgumentHelp(Resource.parentHelp, valueName: Resource.parentName))
    var parent: Resource.Parent

    func answer(from client: PyAirtableClient) async throws -> [Resource.Item] {
        try await Resource.list(in: parent, from: client)
    }
}

/// `pyat <resources> update ID --name NAME [--if-version N]`.
struct RenameCommand<Resource: RenamableResource>: ResourceCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "update", abstract: Resource.renameAbstract)
    }

    @OptionGroup(title: "Global options") var options: GlobalOptions

    @Argument(help: ArgumentHelp(Resource.idHelp, valueName: Resource.name))
    var id: Identifier<Resource.Kind>

    @Option(help: "The new name.")
    var name: String

    @OptionGroup var precondition: VersionPrecondition

    func validate() throws {
        try ResourceName.validate(name)
    }

    func answer(from client: PyAirtableClient) async throws -> Resource.Item {
        try await Resource.rename(id, to: name, ifVersion: precondition.ifVersion, from: client)
    }
}

/// `pyat <resources> delete ID [--if-version N]`: reports `Deleted base app….` in `table` format,
/// `{"deleted": true, "id": …}` in the others.
struct DeleteCommand<Resource: DeletableResource>: ClientCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "delete", abstract: Resource.deleteAbstract)
    }

    @OptionGroup(title: "Global options") var options: GlobalOptions

    @Argument(help: ArgumentHelp(Resource.idHelp, valueName: Resource.name))
    var id: Identifier<Resource.Kind>

    @OptionGroup var precondition: Resource.Precondition

    func run() async throws {
        try await options.withClient { try await Resource.delete(id, ifVersion: precondition.ifVersion, from: $0) }
        try options.output.deleted(id.rawValue, kind: Resource.name)
    }
}
