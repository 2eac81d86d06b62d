import ArgumentParser
import Foundation
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat fields …`.
    struct Fields: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, add, change and delete the fields of a table.",
            subcommands: [
                ListCommand<Resource>.self, Get.self, Create.self, Update.self, DeleteCommand<Resource>.self,
            ]
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
    var linkedTable: TableID?

    func validate() throws {
        if let precision, !(0...8).contains(precision) { throw ValidationError("--precision must be 0 to 8") }
    }

    func fieldOptions(type: FieldType?) -> FieldOptions? {
        FieldDefinition.options(type: type, choices: choices, precision: precision, linkedTable: linkedTable)
    }
}

extension Pyat.Fields {
    enum Resource: ListableResource, DeletableResource {
        typealias Precondition = VersionPrecondition
        typealias Item = Field
        typealias Kind = FieldKind
        static let name = "field"
        static let idHelp = "The field id (fld…)."
        static let parentName = "table"
        static let parentHelp = "The table id (tbl…)."
        static let listAbstract = "List the fields of a table."
        static let deleteAbstract = "Delete a field and its values."

        static func list(in table: TableID, from client: PyAirtableClient) async throws -> [Field] {
            try await client.fields.list(in: table)
        }

        static func delete(_ id: FieldID, ifVersion: Int?, from client: PyAirtableClient) async throws {
            try await client.fields.delete(id, ifVersion: ifVersion)
        }
    }

    struct Get: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Show a field of a table, by id or by name.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: TableID

        @Argument(help: "The field id (fld…) or name.")
        var field: String

        func answer(from client: PyAirtableClient) async throws -> Field {
            // The API has no GET /fields/{id}: a field is read with its table's field list.
            let fields = try await client.fields.list(in: table)
            guard let match = fields.first(where: { $0.id.rawValue == field || $0.name == field }) else {
                throw CommandFailure("table \(table) has no field '\(field)'")
            }
            return match
        }
    }

    struct Create: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Add a field to a table.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: TableID

        @Option(help: "The field's name.")
        var name: String

        @Option(help: "The field's type: \(FieldType.allCases.map(\.rawValue).joined(separator: ", ")).")
        var type: String

        @Option(help: "What the field holds.")
        var description: String?

        @OptionGroup var fieldOptions: FieldOptionArguments

        func validate() throws {
            try ResourceName.validate(name)
            _ = try FieldDefinition.fieldType(type)
        }

        func answer(from client: PyAirtableClient) async throws -> Field {
            let type = try FieldDefinition.fieldType(type)
            let request = CreateFieldRequest(
                name: name,
                type: type,
                options: fieldOptions.fieldOptions(type: type),
                description: description
            )
            return try await client.fields.create(in: table, field: request)
        }
    }

    struct Update: ResourceCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rename a field, or change its description or options (a field's type does not change)."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The field id (fld…).")
        var field: FieldID

        @Option(help: "The new name.")
        var name: String?

        @Option(help: "The new description.")
        var description: String?

        @OptionGroup var fieldOptions: FieldOptionArguments

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            guard name != nil || description != nil || fieldOptions.fieldOptions(type: nil) != nil else {
                throw ValidationError("give --name, --description, --choices, --precision or --linked-table")
            }
            try ResourceName.validate(name)
        }

        func answer(from client: PyAirtableClient) async throws -> Field {
            let changes = UpdateFieldRequest(
                name: name,
                options: fieldOptions.fieldOptions(type: nil),
                description: description
            )
            return try await client.fields.update(field, with: changes, ifVersion: precondition.ifVersion)
        }
    }
}
