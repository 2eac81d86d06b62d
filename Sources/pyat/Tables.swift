import ArgumentParser
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat tables …`.
    struct Tables: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, create, change and delete the tables of a base.",
            subcommands: [
                ListCommand<Resource>.self, GetCommand<Resource>.self, Create.self, Update.self,
                DeleteCommand<Resource>.self,
            ]
        )
    }
}

extension Pyat.Tables {
    enum Resource: ListableResource, GettableResource, DeletableResource {
        typealias Precondition = VersionPrecondition
        typealias Item = Table
        typealias Kind = TableKind
        static let name = "table"
        static let idHelp = "The table id (tbl…)."
        static let parentName = "base"
        static let parentHelp = "The base id (app…)."
        static let listAbstract = "List the tables of a base."
        static let getAbstract = "Show a table with its fields and views."
        static let deleteAbstract = "Delete a table with its records."

        static func list(in base: BaseID, from client: PyAirtableClient) async throws -> [Table] {
            try await client.tables.list(in: base)
        }

        static func get(_ id: TableID, from client: PyAirtableClient) async throws -> Table {
            try await client.tables.get(id)
        }

        static func delete(_ id: TableID, ifVersion: Int?, from client: PyAirtableClient) async throws {
            try await client.tables.delete(id, ifVersion: ifVersion)
        }
    }

    struct Create: ResourceCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a table with its fields; the first field is the primary one.",
            discussion: """
                Each --field-def is Name:type, with options after a second colon for some types:
                  --field-def Name:singleLineText --field-def Score:number:1
                  --field-def Status:singleSelect:Todo,Done --field-def Project:multipleRecordLinks:tbl…
                """
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The base id (app…).")
        var base: BaseID

        @Option(help: "The table's name.")
        var name: String

        @Option(help: "What the table holds.")
        var description: String?

        @Option(
            name: .customLong("field-def"),
            help: ArgumentHelp("A field, as Name:type[:options].", valueName: "field")
        )
        var fieldDefinitions: [String] = []

        func validate() throws {
            try ResourceName.validate(name)
            guard !fieldDefinitions.isEmpty else {
                throw ValidationError("give at least one --field-def Name:type; the first is the primary field")
            }
            for definition in fieldDefinitions { _ = try FieldDefinition.parse(definition) }
        }

        func answer(from client: PyAirtableClient) async throws -> Table {
            let fields = try fieldDefinitions.map(FieldDefinition.parse)
            return try await client.tables.create(in: base, name: name, fields: fields, description: description)
        }
    }

    struct Update: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Rename or re-describe a table.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: TableID

        @Option(help: "The new name.")
        var name: String?

        @Option(help: "The new description.")
        var description: String?

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            guard name != nil || description != nil else { throw ValidationError("give --name or --description") }
            try ResourceName.validate(name)
        }

        func answer(from client: PyAirtableClient) async throws -> Table {
            let changes = UpdateTableRequest(name: name, description: description)
            return try await client.tables.update(table, with: changes, ifVersion: precondition.ifVersion)
        }
    }
}
