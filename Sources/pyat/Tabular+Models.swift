import Foundation
import PyAirtableModels

// The columns each resource shows in `table` and `csv` output; headers are the wire names.

extension User: Tabular {
    static let columns: [OutputColumn<User>] = [
        OutputColumn("id") { $0.id.rawValue },
        OutputColumn("email") { $0.email },
        OutputColumn("name") { $0.name },
    ]
}

extension HealthStatus: Tabular {
    static let columns: [OutputColumn<HealthStatus>] = [
        OutputColumn("status") { $0.status },
        OutputColumn("version") { $0.version },
        OutputColumn("database") { $0.database },
        OutputColumn("uptime_seconds") { CellText.of($0.uptimeSeconds.rounded()) },
    ]
}

extension Workspace: Tabular {
    static let columns: [OutputColumn<Workspace>] = [
        OutputColumn("id") { $0.id.rawValue },
        OutputColumn("name") { $0.name },
        OutputColumn("role") { $0.role.rawValue },
        OutputColumn("version") { String($0.version) },
        OutputColumn("updated_at") { CellText.of($0.updatedAt) },
    ]
}

extension Base: Tabular {
    static let columns: [OutputColumn<Base>] = [
        OutputColumn("id") { $0.id.rawValue },
        OutputColumn("name") { $0.name },
        OutputColumn("workspace_id") { $0.workspaceID.rawValue },
        OutputColumn("version") { String($0.version) },
        OutputColumn("updated_at") { CellText.of($0.updatedAt) },
    ]
}

extension Table: Tabular {
    static let columns: [OutputColumn<Table>] = [
        OutputColumn("id") { $0.id.rawValue },
        OutputColumn("name") { $0.name },
        OutputColumn("base_id") { $0.baseID.rawValue },
        OutputColumn("description") { CellText.of($0.description) },
        OutputColumn("fields") { table in table.fields.map(\.name).joined(separator: ", ") },
        OutputColumn("views") { table in table.views.map(\.name).joined(separator: ", ") },
        OutputColumn("version") { String($0.version) },
    ]
}

extension Field: Tabular {
    static let columns: [OutputColumn<Field>] = [
        OutputColumn("id") { $0.id.rawValue },
        OutputColumn("name") { $0.name },
        OutputColumn("type") { $0.type.rawValue },
        OutputColumn("options") { CellText.of($0.options) },
        OutputColumn("description") { CellText.of($0.description) },
        OutputColumn("version") { String($0.version) },
    ]
}

extension View: Tabular {
    static let columns: [OutputColumn<View>] = [
        OutputColumn("id") { $0.id.rawValue },
        OutputColumn("name") { $0.name },
        OutputColumn("type") { $0.type },
        OutputColumn("filter") { CellText.of($0.filter) },
        OutputColumn("sort") { SortSpec.format($0.sort ?? []) },
        OutputColumn("fields") { ($0.fields ?? []).joined(separator: ", ") },
        OutputColumn("version") { String($0.version) },
    ]
}

extension DeletedRecord: Tabular {
    static let columns: [OutputColumn<DeletedRecord>] = [
        OutputColumn("id") { $0.id.rawValue }, OutputColumn("deleted") { String($0.deleted) },
    ]
}

extension Record {
    /// The `id` column, then one column per field name.
    static func columns(fields: [String]) -> [OutputColumn<Record>] {
        [OutputColumn("id") { $0.id.rawValue }]
            + fields.map { name in OutputColumn(name) { CellText.of($0.fields[name]) } }
    }
}

extension CellText {
    /// Field options in a few words: `choices: Todo, Done`, `precision: 2`, `linked table: tbl…`.
    static func of(_ options: FieldOptions?) -> String {
        guard let options else { return "" }
        var parts: [String] = []
        if let choices = options.choices { parts.append("choices: " + choices.map(\.name).joined(separator: ", ")) }
        if let precision = options.precision { parts.append("precision: \(precision)") }
        if let linked = options.linkedTableID { parts.append("linked table: \(linked)") }
        return parts.joined(separator: "; ")
    }
}
