import ArgumentParser
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat workspaces …`.
    struct Workspaces: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, create, rename and delete workspaces.",
            subcommands: [
                List.self, GetCommand<Resource>.self, Create.self, RenameCommand<Resource>.self,
                DeleteCommand<Resource>.self,
            ]
        )
    }
}

extension Pyat.Workspaces {
    enum Resource: GettableResource, RenamableResource, DeletableResource {
        typealias Precondition = VersionPrecondition
        typealias Item = Workspace
        typealias Kind = WorkspaceKind
        static let name = "workspace"
        static let idHelp = "The workspace id (wsp…)."
        static let getAbstract = "Show a workspace."
        static let renameAbstract = "Rename a workspace."
        static let deleteAbstract = "Delete a workspace with everything in it (owners)."

        static func get(_ id: WorkspaceID, from client: PyAirtableClient) async throws -> Workspace {
            try await client.workspaces.get(id)
        }

        static func rename(
            _ id: WorkspaceID,
            to name: String,
            ifVersion: Int?,
            from client: PyAirtableClient
        ) async throws -> Workspace {
            try await client.workspaces.update(id, name: name, ifVersion: ifVersion)
        }

        static func delete(_ id: WorkspaceID, ifVersion: Int?, from client: PyAirtableClient) async throws {
            try await client.workspaces.delete(id, ifVersion: ifVersion)
        }
    }
}

extension Pyat.Workspaces {
    struct List: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "List the workspaces you belong to, with your role.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        func answer(from client: PyAirtableClient) async throws -> [Workspace] {
            try await client.workspaces.list()
        }
    }

    struct Create: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Create a workspace; you become its owner.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Option(help: "The workspace's name.")
        var name: String

        func validate() throws {
            try ResourceName.validate(name)
        }

        func answer(from client: PyAirtableClient) async throws -> Workspace {
            try await client.workspaces.create(name: name)
        }
    }
}
