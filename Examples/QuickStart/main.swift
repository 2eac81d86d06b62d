import Foundation
import PyAirtableClient

// Reads PYAT_SERVER and PYAT_TOKEN (as printed by `pyat serve --demo`).
let configuration = try PyAirtableClient.Configuration.fromEnvironment()

try await withPyAirtableClient(configuration: configuration) { client in
    let me = try await client.users.me()
    print("signed in as \(me.email)")

    // A workspace, a base and a table created with its fields.
    let workspace = try await client.workspaces.create(name: "Quick start")
    let base = try await client.bases.create(in: workspace.id, name: "Launch")
    let table = try await client.tables.create(
        in: base.id,
        name: "Tasks",
        fields: [.singleLineText("Name"), .singleSelect("Status", choices: ["Todo", "Done"]), .number("Score")]
    )

    // Records: one at a time, and 100 in one all-or-nothing batch. A write answers `.saved` with the
    // server's record, or `.queued` when the server cannot be reached and the offline queue keeps it;
    // `get()` asks for the saved record (this client has no offline queue, so it is never queued).
    let first = try await client.records.create(
        in: table.id,
        fields: ["Name": "Write the docs", "Status": "Todo", "Score": 3]
    ).get()
    let operations = (1...100).map { index in
        BatchOperation.create(fields: [
            "Name": .string("Task \(index)"), "Status": .string(index % 3 == 0 ? "Done" : "Todo"),
            "Score": .number(Double(index % 10)),
        ])
    }
    _ = try await client.records.batch(in: table.id, operations: operations)

    // One page, filtered with a formula and sorted.
    let page = try await client.records.list(
        in: table.id,
        query: RecordQuery(
            sort: [.descending("Score")],
            filter: "AND({Status} = 'Done', {Score} >= 5)",
            pageSize: 5
        )
    )
    for record in page.data {
        print(record.fields["Name"]?.displayText ?? "", record.fields["Score"]?.displayText ?? "")
    }

    // Every page, fetched lazily as the loop asks for more.
    var count = 0
    for try await _ in client.records.all(in: table.id, query: RecordQuery(pageSize: 25)) {
        count += 1
    }
    print("\(count) records in \(table.name)")

    // Optimistic concurrency: someone else changes the record first...
    try await client.records.update(first.id, fields: ["Score": 4], ifVersion: first.version)
    do {
        // ...so a write based on the old version gets 412; `.fail` hands you the current record.
        try await client.records.update(first.id, fields: ["Score": 5], ifVersion: first.version, onConflict: .fail)
    } catch let error as PyAirtableError where error == .preconditionFailed {
        let current = error.currentRecord
        print("conflict: the record is at version \(current?.version ?? 0)")
    }
    // By default a conflict is merged field by field against the version the edit started from:
    // this rename lands on top of the other write's score (a field both changed keeps the server's).
    let merged = try await client.records.update(first, fields: ["Name": "Merged"]).get()
    print("merged: version \(merged.version), score \(merged.fields["Score"]?.displayText ?? "")")

    try await client.workspaces.delete(workspace.id)
}
