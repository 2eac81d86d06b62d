import ArgumentParser
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat bases …`.
    struct Bases: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, create, rename and delete the bases of a workspace.",
            subcommands: [
                ListCommand<Resource>.self, GetCommand<Resource>.self, Create.self, RenameCommand<Resource>.self,
                DeleteCommand<Resource>.self,
            ]
        )
    }
}

extension Pyat.Bases {
    enum Resource: ListableResource, GettableResource, RenamableResource, DeletableResource {
        typealias Precondition = VersionPrecondition
        typealias Item = Base
        typealias Kind = BaseKind
        static let name = "base"
        static let idHelp = "The base id (app…)."
        static let parentName = "workspace"
        static let parentHelp = "The workspace id (wsp…)."
        static let listAbstract = "List the bases of a workspace."
        static let getAbstract = "Show a base."
        static let renameAbstract = "Rename a base."
        static let deleteAbstract = "Delete a base with its tables and records."

        static func list(in workspace: WorkspaceID, from client: PyAirtableClient) async throws -> [Base] {
            try await client.bases.list(in: workspace)
        }

        static func get(_ id: BaseID, from client: PyAirtableClient) async throws -> Base {
            try await client.bases.get(id)
        }

        static func rename(
            _ id: BaseID,
            to name: String,
            ifVersion: Int?,
            from client: PyAirtableClient
        ) async throws
            -> Base
        {
            try await client.bases.update(id, name: name, ifVersion: ifVersion)
        }

        static func delete(_ id: BaseID, ifVersion: Int?, from client: PyAirtableClient) async throws {
            try await client.bases.delete(id, ifVersion: ifVersion)
        }
    }
}

extension Pyat.Bases {
    struct Create: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Create a base in a workspace.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The workspace id (wsp…).")
        var workspace: WorkspaceID

        @Option(help: "The base's name.")
        var name: String

        func validate() throws {
            try ResourceName.validate(name)
        }

        func answer(from client: PyAirtableClient) async throws -> Base {
            try await client.bases.create(in: workspace, name: name)
        }
    }
}
