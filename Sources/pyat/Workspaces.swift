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
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the workspaces you belong to, with your role.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        func run() async throws {
            let workspaces = try await options.withClient { try await $0.workspaces.list() }
            try options.output.list(workspaces)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a workspace.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The workspace id (wsp…).")
        var workspace: String

        func validate() throws {
            _ = try WorkspaceID.argument(workspace)
        }

        func run() async throws {
            let id = try WorkspaceID.argument(workspace)
            let workspace = try await options.withClient { try await $0.workspaces.get(id) }
            try options.output.item(workspace)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a workspace; you become its owner.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Option(help: "The workspace's name.")
        var name: String

        func validate() throws {
            guard !name.isEmpty else { throw ValidationError("--name must not be empty") }
        }

        func run() async throws {
            let workspace = try await options.withClient { try await $0.workspaces.create(name: name) }
            try options.output.item(workspace)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a workspace.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The workspace id (wsp…).")
        var workspace: String

        @Option(help: "The new name.")
        var name: String

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            _ = try WorkspaceID.argument(workspace)
            guard !name.isEmpty else { throw ValidationError("--name must not be empty") }
        }

        func run() async throws {
            let id = try WorkspaceID.argument(workspace)
            let workspace = try await options.withClient {
                try await $0.workspaces.update(id, name: name, ifVersion: precondition.ifVersion)
            }
            try options.output.item(workspace)
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a workspace with everything in it (owners).")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The workspace id (wsp…).")
        var workspace: String

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            _ = try WorkspaceID.argument(workspace)
        }

        func run() async throws {
            let id = try WorkspaceID.argument(workspace)
            try await options.withClient { try await $0.workspaces.delete(id, ifVersion: precondition.ifVersion) }
            try options.output.deleted(id.rawValue, kind: "workspace")
        }
    }
}
