import ArgumentParser
import Foundation
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat fields …`.
    struct Fields: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, add, change and delete the fields of a table.",
            subcommands: [List.self, Get.self, Create.self, Update.self, Delete.self]
        )
    }
}

/// `--choices`, `--precision` and `--linked-table`: the type-specific settings of a field.
struct FieldOptionArguments: ParsableArguments {
    @Option(help: ArgumentHelp("The choices of a select field, comma-separated.", valueName: "a,b"))
    var choices: String?

    @Option(help: "Digits after the decimal point of a number field.")
    var precision: Int?

    @Option(
        name: .customLong("linked-table"),
        help: ArgumentHelp("The table a link field points to.", valueName: "tbl")
    )
    var linkedTable: String?

    func validate() throws {
        if let linkedTable { _ = try TableID.argument(linkedTable) }
        if let precision, !(0...8).contains(precision) { throw ValidationError("--precision must be 0 to 8") }
    }

    func fieldOptions(type: FieldType?) throws -> FieldOptions? {
        FieldDefinition.options(
            type: type,
            choices: choices,
            precision: precision,
            linkedTable: try linkedTable.map(TableID.argument)
        )
    }
}

extension Pyat.Fields {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the fields of a table.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: String

        func validate() throws {
            _ = try TableID.argument(table)
        }

        func run() async throws {
            let id = try TableID.argument(table)
            let fields = try await options.withClient { try await $0.fields.list(in: id) }
            try options.output.list(fields)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a field of a table, by id or by name.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: String

        @Argument(help: "The field id (fld…) or name.")
        var field: String

        func validate() throws {
            _ = try TableID.argument(table)
        }

        func run() async throws {
            let id = try TableID.argument(table)
            // The API has no GET /fields/{id}: a field is read with its table's field list.
            let fields = try await options.withClient { try await $0.fields.list(in: id) }
            guard let match = fields.first(where: { $0.id.rawValue == field || $0.name == field }) else {
                throw CommandFailure("table \(id) has no field '\(field)'")
            }
            try options.output.item(match)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a field to a table.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: String

        @Option(help: "The field's name.")
        var name: String

        @Option(help: "The field's type: \(FieldType.allCases.map(\.rawValue).joined(separator: ", ")).")
        var type: String

        @Option(help: "What the field holds.")
        var description: String?

        @OptionGroup var fieldOptions: FieldOptionArguments

        func validate() throws {
            _ = try TableID.argument(table)
            guard !name.isEmpty else { throw ValidationError("--name must not be empty") }
            _ = try FieldDefinition.fieldType(type)
        }

        func run() async throws {
            let id = try TableID.argument(table)
            let type = try FieldDefinition.fieldType(type)
            let request = CreateFieldRequest(
                name: name,
                type: type,
                options: try fieldOptions.fieldOptions(type: type),
                description: description
            )
            let field = try await options.withClient { try await $0.fields.create(in: id, request) }
            try options.output.item(field)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rename a field, or change its description or options (a field's type does not change)."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The field id (fld…).")
        var field: String

        @Option(help: "The new name.")
        var name: String?

        @Option(help: "The new description.")
        var description: String?

        @OptionGroup var fieldOptions: FieldOptionArguments

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            _ = try FieldID.argument(field)
            let changesOptions = try fieldOptions.fieldOptions(type: nil) != nil
            guard name != nil || description != nil || changesOptions else {
                throw ValidationError("give --name, --description, --choices, --precision or --linked-table")
            }
            if name?.isEmpty == true { throw ValidationError("--name must not be empty") }
        }

        func run() async throws {
            let id = try FieldID.argument(field)
            let changes = UpdateFieldRequest(
                name: name,
                options: try fieldOptions.fieldOptions(type: nil),
                description: description
            )
            let field = try await options.withClient {
                try await $0.fields.update(id, changes, ifVersion: precondition.ifVersion)
            }
            try options.output.item(field)
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a field and its values.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The field id (fld…).")
        var field: String

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            _ = try FieldID.argument(field)
        }

        func run() async throws {
            let id = try FieldID.argument(field)
            try await options.withClient { try await $0.fields.delete(id, ifVersion: precondition.ifVersion) }
            try options.output.deleted(id.rawValue, kind: "field")
        }
    }
}
