import ArgumentParser
import Foundation
import PyAirtableClient
import PyAirtableModels

extension Pyat.Records {
    /// `pyat records comments …`.
    struct Comments: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, add, edit and delete a record's comments.",
            discussion: """
                Mention a member with @[usr…] in the text. Examples:
                  pyat records comments add rec… "Can you check this, @[usr…]?"
                  pyat records comments list rec… --format json
                """,
            subcommands: [List.self, Add.self, Edit.self, Delete.self]
        )
    }
}

extension PyAirtableModels.Comment: Tabular {
    static let columns: [OutputColumn<PyAirtableModels.Comment>] = [
        OutputColumn("id") { $0.id.rawValue },
        OutputColumn("author") { $0.author.name.isEmpty ? $0.author.email : $0.author.name },
        OutputColumn("text") { $0.text },
        OutputColumn("created_at") { CellText.of($0.createdAt) },
        OutputColumn("updated_at") { $0.updatedAt.map { CellText.of($0) } ?? "" },
    ]
}

extension Pyat.Records.Comments {
    struct List: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "A record's comments, newest first (every page).")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The record id (rec…).")
        var record: RecordID

        func answer(from client: PyAirtableClient) async throws -> [PyAirtableModels.Comment] {
            try await client.comments.all(on: record).collect()
        }
    }

    struct Add: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Comment on a record (commenter or higher).")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The record id (rec…).")
        var record: RecordID

        @Argument(help: "The text; @[usr…] mentions a member.")
        var text: String

        func answer(from client: PyAirtableClient) async throws -> PyAirtableModels.Comment {
            try await client.comments.create(on: record, text: text)
        }
    }

    struct Edit: ResourceCommand {
        static let configuration = CommandConfiguration(abstract: "Replace a comment's text (its author only).")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The comment id (com…).")
        var comment: CommentID

        @Argument(help: "The new text.")
        var text: String

        func answer(from client: PyAirtableClient) async throws -> PyAirtableModels.Comment {
            try await client.comments.update(comment, text: text)
        }
    }

    struct Delete: ClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a comment (its author, or a workspace owner)."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The comment id (com…).")
        var comment: CommentID

        func run() async throws {
            try await options.withClient { try await $0.comments.delete(comment) }
            try options.output.deleted(comment.rawValue, kind: "comment")
        }
    }
}
