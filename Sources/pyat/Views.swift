import ArgumentParser
import Foundation
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat views …`.
    struct Views: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, create, change and delete views: saved filters, sorts and visible fields.",
            subcommands: [List.self, Get.self, Create.self, Update.self, Delete.self]
        )
    }
}

/// `--filter`, `--sort` and `--fields` of a view.
struct ViewArguments: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "A formula records must match, such as \"{Score} > 3\" (\"\" clears it).",
            valueName: "formula"
        )
    )
    var filter: String?

    @Option(help: ArgumentHelp("Sort keys, such as Score:desc,Name (\"\" clears them).", valueName: "sort"))
    var sort: String?

    @Option(help: ArgumentHelp("The visible fields, comma-separated (\"\" shows all).", valueName: "a,b"))
    var fields: String?

    func validate() throws {
        _ = try sortSpecs()
    }

    func sortSpecs() throws -> [SortSpec]? {
        guard let sort else { return nil }
        guard !sort.isEmpty else { return [] }
        do {
            return try SortSpec.parseList(sort)
        } catch {
            throw ValidationError("--sort: \(error.description)")
        }
    }

    var fieldNames: [String]? {
        fields.map { list in
            list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }
}

extension Pyat.Views {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the views of a table.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: String

        func validate() throws {
            _ = try TableID.argument(table)
        }

        func run() async throws {
            let id = try TableID.argument(table)
            let views = try await options.withClient { try await $0.views.list(in: id) }
            try options.output.list(views)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a view.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The view id (viw…).")
        var view: String

        func validate() throws {
            _ = try ViewID.argument(view)
        }

        func run() async throws {
            let id = try ViewID.argument(view)
            let view = try await options.withClient { try await $0.views.get(id) }
            try options.output.item(view)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a view of a table.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: String

        @Option(help: "The view's name.")
        var name: String

        @Option(help: "The view's type (default grid).")
        var type: String?

        @OptionGroup var view: ViewArguments

        func validate() throws {
            _ = try TableID.argument(table)
            guard !name.isEmpty else { throw ValidationError("--name must not be empty") }
        }

        func run() async throws {
            let id = try TableID.argument(table)
            let request = CreateViewRequest(
                name: name,
                type: type,
                filter: view.filter.flatMap { $0.isEmpty ? nil : $0 },
                sort: try view.sortSpecs(),
                fields: view.fieldNames
            )
            let view = try await options.withClient { try await $0.views.create(in: id, request) }
            try options.output.item(view)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rename a view, or change its filter, sort or fields."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The view id (viw…).")
        var view: String

        @Option(help: "The new name.")
        var name: String?

        @OptionGroup var changes: ViewArguments

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            _ = try ViewID.argument(view)
            guard name != nil || changes.filter != nil || changes.sort != nil || changes.fields != nil else {
                throw ValidationError("give --name, --filter, --sort or --fields")
            }
            if name?.isEmpty == true { throw ValidationError("--name must not be empty") }
        }

        func run() async throws {
            let id = try ViewID.argument(view)
            let request = UpdateViewRequest(
                name: name,
                filter: changes.filter,
                sort: try changes.sortSpecs(),
                fields: changes.fieldNames
            )
            let view = try await options.withClient {
                try await $0.views.update(id, request, ifVersion: precondition.ifVersion)
            }
            try options.output.item(view)
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a view (its records stay).")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The view id (viw…).")
        var view: String

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            _ = try ViewID.argument(view)
        }

        func run() async throws {
            let id = try ViewID.argument(view)
            try await options.withClient { try await $0.views.delete(id, ifVersion: precondition.ifVersion) }
            try options.output.deleted(id.rawValue, kind: "view")
        }
    }
}
