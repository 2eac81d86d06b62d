import ArgumentParser
import Foundation
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat views …`.
    struct Views: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, create, change and delete views: saved filters, sorts and visible fields.",
            subcommands: [
                ListCommand<Resource>.self, GetCommand<Resource>.self, Create.self, Update.self,
                DeleteCommand<Resource>.self,
            ]
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
    enum Resource: ListableResource, GettableResource, DeletableResource {
        typealias Precondition = VersionPrecondition
        typealias Item = View
        typealias Kind = ViewKind
        static let name = "view"
        static let idHelp = "The view id (viw…)."
        static let parentName = "table"
        static let parentHelp = "The table id (tbl…)."
        static let listAbstract = "List the views of a table."
        static let getAbstract = "Show a view."
        static let deleteAbstract = "Delete a view (its records stay)."

        static func list(in table: TableID, from client: PyAirtableClient) async throws -> [View] {
            try await client.views.list(in: table)
        }

        static func get(_ id: ViewID, from client: PyAirtableClient) async throws -> View {
            try await client.views.get(id)
        }

        static func delete(_ id: ViewID, ifVersion: Int?, from client: PyAirtableClient) async throws {
            try await client.views.delete(id, ifVersion: ifVersion)
        }
    }

    struct Create: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Create a view of a table.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: TableID

        @Option(help: "The view's name.")
        var name: String

        @Option(help: "The view's type (default grid).")
        var type: String?

        @OptionGroup var view: ViewArguments

        func validate() throws {
            try ResourceName.validate(name)
        }

        func answer(from client: PyAirtableClient) async throws -> View {
            let request = CreateViewRequest(
                name: name,
                type: type,
                filter: view.filter.flatMap { $0.isEmpty ? nil : $0 },
                sort: try view.sortSpecs(),
                fields: view.fieldNames
            )
            return try await client.views.create(in: table, view: request)
        }
    }

    struct Update: ResourceCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rename a view, or change its filter, sort or fields."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The view id (viw…).")
        var view: ViewID

        @Option(help: "The new name.")
        var name: String?

        @OptionGroup var changes: ViewArguments

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            guard name != nil || changes.filter != nil || changes.sort != nil || changes.fields != nil else {
                throw ValidationError("give --name, --filter, --sort or --fields")
            }
            try ResourceName.validate(name)
        }

        func answer(from client: PyAirtableClient) async throws -> View {
            let request = UpdateViewRequest(
                name: name,
                filter: changes.filter,
                sort: try changes.sortSpecs(),
                fields: changes.fieldNames
            )
            return try await client.views.update(view, with: request, ifVersion: precondition.ifVersion)
        }
    }
}
