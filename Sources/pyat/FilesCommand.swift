import ArgumentParser
import Foundation
import PyAirtableClient
import PyAirtableModels
import Synchronization

extension Pyat {
    /// `pyat files …`.
    struct Files: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload, download, list and delete files.",
            subcommands: [
                Upload.self, Download.self, List.self, GetCommand<Resource>.self, DeleteCommand<Resource>.self,
            ]
        )
    }
}

extension FileMetadata: Tabular {
    static let columns: [OutputColumn<FileMetadata>] = [
        OutputColumn("id") { $0.id.rawValue },
        OutputColumn("name") { $0.name },
        OutputColumn("content_type") { $0.contentType },
        OutputColumn("size") { String($0.size) },
        OutputColumn("sha256") { $0.sha256 },
        OutputColumn("workspace_id") { CellText.of($0.workspaceID?.rawValue) },
        OutputColumn("created_at") { CellText.of($0.createdAt) },
    ]
}

extension Pyat.Files {
    enum Resource: GettableResource, DeletableResource {
        typealias Precondition = NoPrecondition
        typealias Item = FileMetadata
        typealias Kind = FileKind
        static let name = "file"
        static let idHelp = "The file id (fil…)."
        static let getAbstract = "Show a file's metadata."
        static let deleteAbstract = "Delete a file (its uploader, or a creator or higher)."

        static func get(_ id: FileID, from client: PyAirtableClient) async throws -> FileMetadata {
            try await client.files.get(id)
        }

        static func delete(_ id: FileID, ifVersion: Int?, from client: PyAirtableClient) async throws {
            try await client.files.delete(id)
        }
    }

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a file, streamed from disk (a progress bar on a terminal).",
            discussion: "Without --workspace the file is private to you; in a workspace, every member may read it."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The file to upload.")
        var file: String

        @Option(help: "The workspace (wsp…) the file belongs to.")
        var workspace: WorkspaceID?

        @Option(help: "The file's name on the server (default: the file's name).")
        var name: String?

        @Option(help: "The media type, such as application/pdf (default: application/octet-stream).")
        var type: String?

        func validate() throws {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw ValidationError("no file at '\(file)'")
            }
        }

        func run() async throws {
            let url = URL(fileURLWithPath: file)
            let bar = ProgressBar(label: "upload")
            let metadata = try await options.withClient { client in
                try await client.files.upload(
                    fileAt: url,
                    name: name,
                    contentType: type,
                    workspace: workspace,
                    progress: bar?.reporter
                )
            }
            bar?.finish()
            try options.output.item(metadata)
        }
    }

    struct Download: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a file's bytes, streamed to disk (a progress bar on a terminal).",
            discussion: """
                Without -o the file is written to the current directory under its stored name, made \
                safe (no directories, no leading dots). An existing file is kept unless --force. \
                With --format json the file's metadata is printed.
                """
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The file id (fil…).")
        var id: FileID

        @Option(name: .shortAndLong, help: "Where to write the bytes (- for standard output is not supported).")
        var output: String?

        @Flag(help: "Replace an existing file.")
        var force = false

        func run() async throws {
            let bar = ProgressBar(label: "download")
            let (metadata, result) = try await options.withClient { client in
                let metadata = try await client.files.get(id)
                let path = output ?? SafeFileName.make(metadata.name, fallback: metadata.id.rawValue)
                if !force && FileManager.default.fileExists(atPath: path) {
                    throw CommandFailure("'\(path)' exists; use --force to replace it, or -o to choose another path")
                }
                let result = try await client.files.download(
                    id,
                    to: URL(fileURLWithPath: path),
                    progress: bar?.reporter
                )
                return (metadata, result)
            }
            bar?.finish()
            if options.format == .table {
                options.output.message("Wrote \(result.size) bytes to \(result.path).")
            } else {
                try options.output.item(metadata)
            }
        }
    }

    struct List: ResourceCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the files you may read: yours and your workspaces' (or one workspace's)."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Option(help: "Only the files of this workspace (wsp…).")
        var workspace: WorkspaceID?

        func answer(from client: PyAirtableClient) async throws -> [FileMetadata] {
            try await client.files.all(in: workspace).collect()
        }
    }
}

/// A stored file name made safe to create in the current directory.
enum SafeFileName {
    /// The last path component, without control characters or a leading dot; `fallback` when
    /// nothing is left.
    static func make(_ name: String, fallback: String) -> String {
        let lastComponent = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        var cleaned = String(
            String.UnicodeScalarView(
                lastComponent.unicodeScalars.map { $0.properties.generalCategory == .control ? "_" : $0 }
            )
        )
        while cleaned.hasPrefix(".") { cleaned.removeFirst() }
        cleaned = cleaned.trimmingCharacters(in: .whitespaces)
        if cleaned.utf8.count > 200 { cleaned = String(cleaned.prefix(100)) }
        return cleaned.isEmpty ? fallback : cleaned
    }
}

/// A one-line progress bar on standard error, shown only when standard error is a terminal.
final class ProgressBar: Sendable {
    private let label: String
    private let lastDrawn = Mutex<Int>(-1)

    /// A bar, or `nil` when standard error is not a terminal.
    init?(label: String) {
        guard isatty(STDERR_FILENO) == 1 else { return nil }
        self.label = label
    }

    /// The bar's ``update(_:)`` as a progress callback.
    var reporter: @Sendable (TransferProgress) -> Void {
        { [self] progress in update(progress) }
    }

    func update(_ progress: TransferProgress) {
        let width = 30
        let percent = progress.total.map { $0 > 0 ? Int(progress.completed * 100 / $0) : 100 }
        // Redraw on each whole percent (or each MiB without a total), not on every chunk.
        let step = percent ?? Int(progress.completed >> 20)
        let redraw = lastDrawn.withLock { last in
            defer { last = step }
            return last != step
        }
        guard redraw else { return }
        let text: String
        if let percent {
            let filled = min(width, percent * width / 100)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            text = "\r\(label) [\(bar)] \(percent)% \(Self.bytes(progress.completed))"
        } else {
            text = "\r\(label) \(Self.bytes(progress.completed))"
        }
        FileHandle.standardError.write(Data(text.utf8))
    }

    func finish() {
        FileHandle.standardError.write(Data("\n".utf8))
    }

    static func bytes(_ count: Int64) -> String {
        if count < 1 << 20 { return "\(count / 1024) KiB" }
        return String(format: "%.1f MiB", Double(count) / Double(1 << 20))
    }
}
