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
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the bases of a workspace.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The workspace id (wsp…).")
        var workspace: String

        func validate() throws {
            _ = try WorkspaceID.argument(workspace)
        }

        func run() async throws {
            let id = try WorkspaceID.argument(workspace)
            let bases = try await options.withClient { try await $0.bases.list(in: id) }
            try options.output.list(bases)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a base.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The base id (app…).")
        var base: String

        func validate() throws {
            _ = try BaseID.argument(base)
        }

        func run() async throws {
            let id = try BaseID.argument(base)
            let base = try await options.withClient { try await $0.bases.get(id) }
            try options.output.item(base)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a base in a workspace.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The workspace id (wsp…).")
        var workspace: String

        @Option(help: "The base's name.")
        var name: String

        func validate() throws {
            _ = try WorkspaceID.argument(workspace)
            guard !name.isEmpty else { throw ValidationError("--name must not be empty") }
        }

        func run() async throws {
            let id = try WorkspaceID.argument(workspace)
            let base = try await options.withClient { try await $0.bases.create(in: id, name: name) }
            try options.output.item(base)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a base.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The base id (app…).")
        var base: String

        @Option(help: "The new name.")
        var name: String

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            _ = try BaseID.argument(base)
            guard !name.isEmpty else { throw ValidationError("--name must not be empty") }
        }

        func run() async throws {
            let id = try BaseID.argument(base)
            let base = try await options.withClient {
                try await $0.bases.update(id, name: name, ifVersion: precondition.ifVersion)
            }
            try options.output.item(base)
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a base with its tables and records.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The base id (app…).")
        var base: String

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            _ = try BaseID.argument(base)
        }

        func run() async throws {
            let id = try BaseID.argument(base)
            try await options.withClient { try await $0.bases.delete(id, ifVersion: precondition.ifVersion) }
            try options.output.deleted(id.rawValue, kind: "base")
        }
    }
}
