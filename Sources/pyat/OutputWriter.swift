import Foundation
import PyAirtableModels

/// A column of `table` and `csv` output: a header and how to show an item's cell as text.
struct OutputColumn<Item>: Sendable {
    var name: String
    var text: @Sendable (Item) -> String

    init(_ name: String, _ text: @escaping @Sendable (Item) -> String) {
        self.name = name
        self.text = text
    }
}

/// A resource with the columns it shows by default in `table` and `csv` output.
protocol Tabular: Encodable, CommandOutput {
    static var columns: [OutputColumn<Self>] { get }
}

extension Tabular {
    func write(to output: OutputWriter) throws {
        try output.item(self)
    }
}

/// Writes results to standard output in one ``OutputFormat``.
///
/// `json` writes the resource's wire JSON (a list as a JSON array), `ndjson` one object per line,
/// `csv` RFC 4180 rows under a header, and `table` aligned columns for a person — a single
/// resource as `name  value` lines.
struct OutputWriter {
    var format: OutputFormat

    /// Writes a list of items.
    func list<Item: Encodable>(_ items: [Item], columns: [OutputColumn<Item>]) throws {
        switch format {
        case .json:
            write(try JSONCoding.encoder.encode(items) + Data("\n".utf8))
        case .ndjson:
            var data = Data()
            for item in items {
                data.append(try JSONCoding.encoder.encode(item))
                data.append(0x0A)
            }
            write(data)
        case .csv:
            let rows = [columns.map(\.name)] + items.map { item in columns.map { $0.text(item) } }
            write(Data(CSV.format(rows).utf8))
        case .table:
            let rows = [columns.map(\.name)] + items.map { item in columns.map { Self.tableCell($0.text(item)) } }
            write(Data(Self.aligned(rows).utf8))
        }
    }

    /// Writes a list of resources with their default columns.
    func list<Item: Tabular>(_ items: [Item]) throws {
        try list(items, columns: Item.columns)
    }

    /// Writes one item.
    func item<Item: Encodable>(_ item: Item, columns: [OutputColumn<Item>]) throws {
        switch format {
        case .json, .ndjson:
            write(try JSONCoding.encoder.encode(item) + Data("\n".utf8))
        case .csv:
            try list([item], columns: columns)
        case .table:
            let rows = columns.map { [$0.name, Self.tableCell($0.text(item))] }
            write(Data(Self.aligned(rows).utf8))
        }
    }

    /// Writes one resource with its default columns.
    func item<Item: Tabular>(_ item: Item) throws {
        try self.item(item, columns: Item.columns)
    }

    /// Reports a deletion: a sentence for a person, `{"deleted": true, "id": …}` for scripts (the
    /// shape of the server's answer to deleting a record).
    func deleted(_ id: String, kind: String) throws {
        if format == .table {
            message("Deleted \(kind) \(id).")
        } else {
            try item(Deletion(id: id), columns: Deletion.columns)
        }
    }

    /// Writes a sentence for a person; nothing in the formats meant for scripts.
    func message(_ text: String) {
        guard format == .table else { return }
        write(Data((text + "\n").utf8))
    }

    private func write(_ data: Data) {
        FileHandle.standardOutput.write(data)
    }

    /// A cell kept on one line, so that rows stay aligned.
    private static func tableCell(_ text: String) -> String {
        text.replacingOccurrences(of: "\r\n", with: "\\n").replacingOccurrences(of: "\n", with: "\\n")
            .replacingOccurrences(of: "\t", with: " ")
    }

    /// Rows padded into columns two spaces apart, without trailing blanks.
    private static func aligned(_ rows: [[String]]) -> String {
        let count = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: count)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        var text = ""
        for row in rows {
            var line = ""
            for (index, cell) in row.enumerated() {
                line += cell
                if index < row.count - 1 { line += String(repeating: " ", count: widths[index] - cell.count + 2) }
            }
            while line.last == " " { line.removeLast() }
            text += line + "\n"
        }
        return text
    }
}

/// The answer to a deletion, for `json`, `ndjson` and `csv` output.
struct Deletion: Tabular {
    var id: String
    var deleted = true

    static let columns: [OutputColumn<Deletion>] = [
        OutputColumn("id") { $0.id }, OutputColumn("deleted") { String($0.deleted) },
    ]
}

/// RFC 4180 CSV.
enum CSV {
    /// Rows as CSV text: fields quoted when they hold a comma, a quote or a line break, quotes
    /// doubled, each row ended by CRLF.
    static func format(_ rows: [[String]]) -> String {
        rows.map { row in row.map(field).joined(separator: ",") + "\r\n" }.joined()
    }

    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else {
            return text
        }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// How values read as text in `table` and `csv` cells.
enum CellText {
    static func of(_ value: FieldValue?) -> String {
        switch value ?? .null {
        case .null: ""
        case .string(let string): string
        case .number(let number): of(number)
        case .bool(let bool): String(bool)
        case .strings(let strings): strings.joined(separator: ", ")
        case .attachments(let attachments): attachments.map { $0.filename ?? $0.id.rawValue }.joined(separator: ", ")
        }
    }

    /// A number without a trailing `.0` when it is whole.
    static func of(_ number: Double) -> String {
        if number.rounded() == number, abs(number) < 1e15 { return String(Int64(number)) }
        return String(number)
    }

    static func of(_ date: Date) -> String {
        Timestamp.format(date)
    }

    static func of(_ string: String?) -> String {
        string ?? ""
    }
}
