import ArgumentParser
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat bases …`.
    struct Bases: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, create, rename and delete the bases of a workspace.",
            subcommands: [List.self, Get.self, Create.self, Update.self, Delete.self]
        )
    }
}

extension Pyat.Bases {
    struct List: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "List the bases of a workspace.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The workspace id (wsp…).")
        var workspace: WorkspaceID

        func answer(from client: PyAirtableClient) async throws -> [Base] {
            try await client.bases.list(in: workspace)
        }
    }

    struct Get: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Show a base.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The base id (app…).")
        var base: BaseID

        func answer(from client: PyAirtableClient) async throws -> Base {
            try await client.bases.get(base)
        }
    }

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

    struct Update: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a base.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The base id (app…).")
        var base: BaseID

        @Option(help: "The new name.")
        var name: String

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            try ResourceName.validate(name)
        }

        func answer(from client: PyAirtableClient) async throws -> Base {
            try await client.bases.update(base, name: name, ifVersion: precondition.ifVersion)
        }
    }

    struct Delete: DeleteCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a base with its tables and records.")
        static let resourceName = "base"

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The base id (app…).")
        var base: BaseID

        @OptionGroup var precondition: VersionPrecondition

        var id: BaseID { base }

        func delete(from client: PyAirtableClient) async throws {
            try await client.bases.delete(base, ifVersion: precondition.ifVersion)
        }
    }
}
