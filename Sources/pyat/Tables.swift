import ArgumentParser
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat tables …`.
    struct Tables: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, create, change and delete the tables of a base.",
            subcommands: [List.self, Get.self, Create.self, Update.self, Delete.self]
        )
    }
}

extension Pyat.Tables {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tables of a base.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The base id (app…).")
        var base: String

        func validate() throws {
            _ = try BaseID.argument(base)
        }

        func run() async throws {
            let id = try BaseID.argument(base)
            let tables = try await options.withClient { try await $0.tables.list(in: id) }
            try options.output.list(tables)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a table with its fields and views.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: String

        func validate() throws {
            _ = try TableID.argument(table)
        }

        func run() async throws {
            let id = try TableID.argument(table)
            let table = try await options.withClient { try await $0.tables.get(id) }
            try options.output.item(table)
        }
    }

    struct Create: AsyncParsableCommand {
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
        var base: String

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
            _ = try BaseID.argument(base)
            guard !name.isEmpty else { throw ValidationError("--name must not be empty") }
            guard !fieldDefinitions.isEmpty else {
                throw ValidationError("give at least one --field-def Name:type; the first is the primary field")
            }
            for definition in fieldDefinitions { _ = try FieldDefinition.parse(definition) }
        }

        func run() async throws {
            let id = try BaseID.argument(base)
            let fields = try fieldDefinitions.map(FieldDefinition.parse)
            let table = try await options.withClient {
                try await $0.tables.create(in: id, name: name, fields: fields, description: description)
            }
            try options.output.item(table)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename or re-describe a table.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: String

        @Option(help: "The new name.")
        var name: String?

        @Option(help: "The new description.")
        var description: String?

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            _ = try TableID.argument(table)
            guard name != nil || description != nil else { throw ValidationError("give --name or --description") }
            if name?.isEmpty == true { throw ValidationError("--name must not be empty") }
        }

        func run() async throws {
            let id = try TableID.argument(table)
            let changes = UpdateTableRequest(name: name, description: description)
            let table = try await options.withClient {
                try await $0.tables.update(id, changes, ifVersion: precondition.ifVersion)
            }
            try options.output.item(table)
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a table with its records.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: String

        @OptionGroup var precondition: VersionPrecondition

        func validate() throws {
            _ = try TableID.argument(table)
        }

        func run() async throws {
            let id = try TableID.argument(table)
            try await options.withClient { try await $0.tables.delete(id, ifVersion: precondition.ifVersion) }
            try options.output.deleted(id.rawValue, kind: "table")
        }
    }
}
