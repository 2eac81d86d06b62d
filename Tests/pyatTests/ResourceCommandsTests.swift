import Foundation
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting
import Testing

@Suite("pyat workspaces, bases, tables, fields, views", .timeLimit(.minutes(15)))
struct ResourceCommandsTests {
    @Test("workspaces list in every format carries the demo workspace")
    func workspacesListFormats() async throws {
        try await CLIFixture.with { fixture in
            let id = try #require(fixture.demo.workspaceID).rawValue

            let json = try await fixture.pyat(["workspaces", "list", "--format", "json"])
            #expect(json.status == 0, "\(json.stderr)")
            let array = try json.jsonArray()
            #expect(array.count == 1)
            #expect(array.first?["id"] as? String == id)
            #expect(array.first?["name"] as? String == "Demo workspace")
            #expect(array.first?["role"] as? String == "owner")
            #expect(array.first?["version"] as? Int == 1)
            #expect(array.first?["created_at"] is String, "the wire JSON, timestamps included")

            let ndjson = try await fixture.pyat(["workspaces", "list", "--format", "ndjson"])
            #expect(ndjson.status == 0)
            #expect(ndjson.stdoutLines.count == 1)
            let line = try #require(
                try JSONSerialization.jsonObject(with: Data(ndjson.stdoutLines[0].utf8)) as? [String: Any]
            )
            #expect(line["id"] as? String == id)

            let csv = try await fixture.pyat(["workspaces", "list", "--format", "csv"])
            #expect(csv.status == 0)
            #expect(csv.stdout.hasSuffix("\r\n"), "RFC 4180 ends rows with CRLF")
            let rows = CSVReader.rows(csv.stdout)
            #expect(rows.first == ["id", "name", "role", "version", "updated_at"])
            #expect(rows.count == 2)
            #expect(Array(rows.last?.prefix(4) ?? []) == [id, "Demo workspace", "owner", "1"])

            let table = try await fixture.pyat(["workspaces", "list"])
            #expect(table.status == 0)
            let lines = table.stdoutLines
            #expect(lines.count == 2)
            #expect(lines.first?.hasPrefix("id") == true)
            #expect(lines.last?.hasPrefix(id) == true)
            // Columns line up: "name" sits above the workspace's name.
            let header = try #require(lines.first)
            let row = try #require(lines.last)
            let nameColumn = try #require(header.range(of: "name")).lowerBound.utf16Offset(in: header)
            #expect(try #require(row.range(of: "Demo workspace")).lowerBound.utf16Offset(in: row) == nameColumn)
        }
    }

    @Test("workspace, base, table, field and view: create, read, update and delete")
    func schemaLifecycle() async throws {
        try await CLIFixture.with { fixture in
            let workspace = try await fixture.pyat(["workspaces", "create", "--name", "CLI", "--format", "json"])
            #expect(workspace.status == 0, "\(workspace.stderr)")
            let workspaceID = try #require(try workspace.jsonObject()["id"] as? String)

            let renamed = try await fixture.pyat([
                "workspaces", "update", workspaceID, "--name", "CLI renamed", "--if-version", "1", "--format", "json",
            ])
            #expect(renamed.status == 0, "\(renamed.stderr)")
            #expect(try renamed.jsonObject()["version"] as? Int == 2)

            let base = try await fixture.pyat(["bases", "create", workspaceID, "--name", "Ops", "--format", "json"])
            #expect(base.status == 0, "\(base.stderr)")
            let baseID = try #require(try base.jsonObject()["id"] as? String)
            let bases = try await fixture.pyat(["bases", "list", workspaceID, "--format", "json"])
            #expect(try bases.jsonArray().map { $0["id"] as? String } == [baseID])

            let table = try await fixture.pyat([
                "tables", "create", baseID, "--name", "Tickets", "--field-def", "Name:singleLineText",
                "--field-def", "Score:number", "--field-def", "Status:singleSelect:Open,Closed", "--format", "json",
            ])
            #expect(table.status == 0, "\(table.stderr)")
            let tableID = try #require(try table.jsonObject()["id"] as? String)

            let fields = try await fixture.pyat(["fields", "list", tableID, "--format", "csv"])
            #expect(fields.status == 0)
            let fieldRows = CSVReader.rows(fields.stdout).dropFirst()
            #expect(fieldRows.map { $0[1] } == ["Name", "Score", "Status"])
            #expect(fieldRows.map { $0[2] } == ["singleLineText", "number", "singleSelect"])
            #expect(fieldRows.last?[3] == "choices: Open, Closed")

            let added = try await fixture.pyat([
                "fields", "create", tableID, "--name", "Done", "--type", "checkbox", "--format", "json",
            ])
            #expect(added.status == 0, "\(added.stderr)")
            let fieldID = try #require(try added.jsonObject()["id"] as? String)
            let got = try await fixture.pyat(["fields", "get", tableID, "Done", "--format", "json"])
            #expect(try got.jsonObject()["id"] as? String == fieldID)
            let renamedField = try await fixture.pyat([
                "fields", "update", fieldID, "--name", "Finished", "--format", "json",
            ])
            #expect(try renamedField.jsonObject()["name"] as? String == "Finished")
            let badType = try await fixture.pyat(["fields", "create", tableID, "--name", "X", "--type", "blob"])
            #expect(badType.status == 2)

            let view = try await fixture.pyat([
                "views", "create", tableID, "--name", "Top", "--filter", "{Score} > 1", "--sort", "Score:desc",
                "--fields", "Name,Score", "--format", "json",
            ])
            #expect(view.status == 0, "\(view.stderr)")
            let viewObject = try view.jsonObject()
            let viewID = try #require(viewObject["id"] as? String)
            #expect(viewObject["filter"] as? String == "{Score} > 1")
            #expect(viewObject["fields"] as? [String] == ["Name", "Score"])
            let views = try await fixture.pyat(["views", "list", tableID, "--format", "ndjson"])
            #expect(views.stdoutLines.contains { $0.contains(viewID) })

            let deleteView = try await fixture.pyat(["views", "delete", viewID, "--format", "json"])
            #expect(try deleteView.jsonObject()["deleted"] as? Bool == true)
            let deleteField = try await fixture.pyat(["fields", "delete", fieldID])
            #expect(deleteField.status == 0)
            #expect(deleteField.stdout == "Deleted field \(fieldID).\n")

            let deleteWorkspace = try await fixture.pyat(["workspaces", "delete", workspaceID])
            #expect(deleteWorkspace.status == 0, "\(deleteWorkspace.stderr)")
            let gone = try await fixture.pyat(["tables", "get", tableID])
            #expect(gone.status == 1)
            #expect(gone.stderr.hasPrefix("error: That was not found"), "\(gone.stderr)")
        }
    }

    @Test("a stale --if-version on a workspace exits 4")
    func staleWorkspaceVersion() async throws {
        try await CLIFixture.with { fixture in
            let id = try #require(fixture.demo.workspaceID).rawValue
            let run = try await fixture.pyat(["workspaces", "update", id, "--name", "X", "--if-version", "7"])
            #expect(run.status == 4)
            #expect(run.stderr.hasPrefix("error: Someone else changed this"), "\(run.stderr)")
        }
    }
}
