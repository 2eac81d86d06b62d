import ArgumentParser
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat workspaces …`.
    struct Workspaces: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, create, rename and delete workspaces.",
            subcommands: [List.self, Get.self, Create.self, Update.self, Delete.self]
        )
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

    struct Get: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Show a workspace.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The workspace id (wsp…).")
        var workspace: WorkspaceID

        func answer(from client: PyAirtableClient) async throws -> Workspace {
            try await client.workspaces.get(workspace)
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

    struct Update: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a workspace.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The workspace id (wsp…).")
        var workspace: WorkspaceID

        @Option(help: "The new name.")
        var name: String

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            try ResourceName.validate(name)
        }

        func answer(from client: PyAirtableClient) async throws -> Workspace {
            try await client.workspaces.update(workspace, name: name, ifVersion: precondition.ifVersion)
        }
    }

    struct Delete: DeleteCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a workspace with everything in it (owners).")
        static let resourceName = "workspace"

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The workspace id (wsp…).")
        var workspace: WorkspaceID

        @OptionGroup var precondition: VersionPrecondition

        var id: WorkspaceID { workspace }

        func delete(from client: PyAirtableClient) async throws {
            try await client.workspaces.delete(id, ifVersion: precondition.ifVersion)
        }
    }
}
