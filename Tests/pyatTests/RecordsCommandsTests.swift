import Foundation
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting
import Testing

@Suite("pyat records", .timeLimit(.minutes(15)))
struct RecordsCommandsTests {
    @Test("create, update and delete with --field values typed by the table's fields")
    func typedFieldLifecycle() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.projectsTable()
            let created = try await fixture.pyat([
                "records", "create", table.id.rawValue, "--field", "Name=CLI test", "--field", "Score=7.5",
                "--field", "Tags=docs, infra", "--field", "Shipped=true", "--field", "Status=Todo", "--format", "json",
            ])
            #expect(created.status == 0, "\(created.stderr)")
            let object = try created.jsonObject()
            let id = try #require(object["id"] as? String)
            let fields = try #require(object["fields"] as? [String: Any])
            #expect(fields["Score"] as? Double == 7.5)
            #expect(fields["Tags"] as? [String] == ["docs", "infra"])
            #expect(fields["Shipped"] as? Bool == true)
            #expect(object["version"] as? Int == 1)

            let recordID = try RecordID(validating: id)
            let stored = try await fixture.withClient { try await $0.records.get(recordID) }
            #expect(stored.fields["Score"] == .number(7.5))
            #expect(stored.fields["Tags"] == .strings(["docs", "infra"]))

            let updated = try await fixture.pyat([
                "records", "update", id, "--field", "score=", "--field", "Status=Done", "--if-version", "1",
                "--format", "json",
            ])
            #expect(updated.status == 0, "\(updated.stderr)")
            let after = try await fixture.withClient { try await $0.records.get(recordID) }
            #expect(after.fields["Score"] == nil || after.fields["Score"] == .null, "Score= clears the cell")
            #expect(after.fields["Status"] == .string("Done"))
            #expect(after.fields["Name"] == .string("CLI test"), "update keeps the other fields")
            #expect(after.version == 2)

            let notANumber = try await fixture.pyat(["records", "update", id, "--field", "Score=lots"])
            #expect(notANumber.status == 2)
            #expect(notANumber.stderr.contains("'Score' is a number"), "\(notANumber.stderr)")
            let unknown = try await fixture.pyat(["records", "update", id, "--field", "Colour=red"])
            #expect(unknown.status == 2)
            #expect(unknown.stderr.contains("no field 'Colour'"))

            let deleted = try await fixture.pyat(["records", "delete", id, "--format", "json"])
            #expect(deleted.status == 0, "\(deleted.stderr)")
            #expect(try deleted.jsonObject()["deleted"] as? Bool == true)
            await #expect(throws: PyAirtableError.notFound) {
                try await fixture.withClient { try await $0.records.get(recordID) }
            }
        }
    }

    @Test("create and update with --json; table output shows id and field columns")
    func jsonFields() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.projectsTable()
            let created = try await fixture.pyat([
                "records", "create", table.id.rawValue, "--json",
                #"{"Name": "From JSON", "Score": 2, "Shipped": false}"#,
            ])
            #expect(created.status == 0, "\(created.stderr)")
            let lines = created.stdoutLines
            let idLine = try #require(lines.first)
            #expect(idLine.hasPrefix("id"))
            let id = try #require(idLine.split(separator: " ").last.map(String.init))
            #expect(lines.contains { $0.hasPrefix("Name") && $0.hasSuffix("From JSON") }, "\(created.stdout)")
            #expect(lines.contains { $0.hasPrefix("Score") && $0.hasSuffix(" 2") }, "whole numbers print without .0")

            let updated = try await fixture.pyat([
                "records", "update", id, "--json", #"{"Score": 3, "Tags": ["docs"]}"#, "--format", "ndjson",
            ])
            #expect(updated.status == 0, "\(updated.stderr)")
            #expect(updated.stdoutLines.count == 1)
            let recordID = try RecordID(validating: id)
            let stored = try await fixture.withClient { try await $0.records.get(recordID) }
            #expect(stored.fields["Score"] == .number(3))
            #expect(stored.fields["Tags"] == .strings(["docs"]))
            #expect(stored.fields["Name"] == .string("From JSON"))

            let invalid = try await fixture.pyat(["records", "update", id, "--json", "[1, 2]"])
            #expect(invalid.status == 2)
            #expect(invalid.stderr.contains("--json must be a JSON object"))
        }
    }

    @Test("list with --filter, --sort and --fields returns matching records in order, only those fields")
    func listFilterSortFields() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.projectsTable()
            let run = try await fixture.pyat([
                "records", "list", table.id.rawValue, "--filter", "{Score} > 5", "--sort", "Score:desc",
                "--fields", "Name,Score", "--format", "json",
            ])
            #expect(run.status == 0, "\(run.stderr)")
            let records = try run.jsonArray()
            let scores = records.compactMap { ($0["fields"] as? [String: Any])?["Score"] as? Double }
            #expect(scores.count == 6)
            #expect(scores == scores.sorted(by: >))
            #expect(scores.allSatisfy { $0 > 5 })
            for record in records {
                let keys = Set(((record["fields"] as? [String: Any]) ?? [:]).keys)
                #expect(keys.isSubset(of: ["Name", "Score"]))
            }

            let csv = try await fixture.pyat([
                "records", "list", table.id.rawValue, "--filter", "{Status} = 'Done'", "--sort", "Name",
                "--fields", "Name,Score", "--format", "csv",
            ])
            let rows = CSVReader.rows(csv.stdout)
            #expect(rows.first == ["id", "Name", "Score"])
            #expect(rows.dropFirst().map { $0[1] } == ["Benchmarks", "Sync engine"])
            #expect(rows.dropFirst().map { $0[2] } == ["6", "9"])

            let badSort = try await fixture.pyat(["records", "list", table.id.rawValue, "--sort", "Score:sideways"])
            #expect(badSort.status == 2)
        }
    }

    @Test("list gives one page and points at the next; --all walks every page")
    func listAllPages() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.projectsTable()
            let page = try await fixture.pyat([
                "records", "list", table.id.rawValue, "--page-size", "3", "--format", "ndjson",
            ])
            #expect(page.status == 0, "\(page.stderr)")
            #expect(page.stdoutLines.count == 3)
            #expect(page.stderr.contains("--cursor "), "\(page.stderr)")

            let all = try await fixture.pyat([
                "records", "list", table.id.rawValue, "--page-size", "3", "--all", "--format", "ndjson",
            ])
            #expect(all.status == 0, "\(all.stderr)")
            let ids = try all.stdoutLines.map { line in
                try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])["id"] as? String
            }
            #expect(ids.count == 8)
            #expect(Set(ids).count == 8)
            #expect(all.stderr.isEmpty)
        }
    }

    @Test("CSV quotes commas, quotes and line breaks so that they read back unchanged")
    func csvQuoting() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.demoTable(named: "Tasks")
            let title = "Comma, \"quote\""
            let notes = "first line\nsecond line"
            let created = try await fixture.pyat([
                "records", "create", table.id.rawValue, "--field", "Title=\(title)", "--field", "Notes=\(notes)",
                "--field", "Estimate=2", "--format", "csv",
            ])
            #expect(created.status == 0, "\(created.stderr)")
            let rows = CSVReader.rows(created.stdout)
            #expect(rows.count == 2)
            let header = try #require(rows.first)
            #expect(header == ["id"] + table.fields.map(\.name), "columns follow the table's field order")
            let row = try #require(rows.last)
            #expect(row[try #require(header.firstIndex(of: "Title"))] == title)
            #expect(row[try #require(header.firstIndex(of: "Notes"))] == notes)
            #expect(row[try #require(header.firstIndex(of: "Estimate"))] == "2")

            let shown = try await fixture.pyat(["records", "get", try #require(row.first)])
            #expect(shown.stdoutLines.contains { $0.hasPrefix("Notes") && $0.hasSuffix("first line\\nsecond line") })
        }
    }

    @Test("a stale --if-version exits 4 with one error line and changes nothing")
    func staleVersionConflict() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.projectsTable()
            let record = try await fixture.withClient {
                try await $0.records.create(in: table.id, fields: ["Name": "Versioned", "Score": 1]).get()
            }
            let first = try await fixture.pyat([
                "records", "update", record.id.rawValue, "--field", "Score=2", "--if-version", "1",
            ])
            #expect(first.status == 0, "\(first.stderr)")

            let stale = try await fixture.pyat([
                "records", "update", record.id.rawValue, "--field", "Score=3", "--if-version", "1",
            ])
            #expect(stale.status == 4)
            #expect(stale.stdout.isEmpty)
            #expect(stale.stderr.hasPrefix("error: Someone else changed this in the meantime."), "\(stale.stderr)")
            #expect(stale.stderr.contains("(request "))
            #expect(stale.stderr.split(separator: "\n").count == 1)

            let staleDelete = try await fixture.pyat(["records", "delete", record.id.rawValue, "--if-version", "1"])
            #expect(staleDelete.status == 4)

            let current = try await fixture.withClient { try await $0.records.get(record.id) }
            #expect(current.fields["Score"] == .number(2))
            #expect(current.version == 2)
        }
    }

    @Test("--on-conflict settles a stale version: merge and client-wins write, server-wins keeps the server's")
    func onConflict() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.projectsTable()
            let record = try await fixture.withClient {
                try await $0.records.create(in: table.id, fields: ["Name": "Conflicted", "Score": 1]).get()
            }
            _ = try await fixture.withClient { try await $0.records.update(record.id, fields: ["Score": 2]).get() }

            // The CLI does not hold version 1, so every field where the write and the server differ is a
            // conflict: the merge keeps the server's value for it, and says so.
            let merged = try await fixture.pyat([
                "records", "update", record.id.rawValue, "--field", "Name=Merged", "--field", "Score=5",
                "--if-version", "1", "--on-conflict", "merge", "--format", "json",
            ])
            #expect(merged.status == 0, "\(merged.stderr)")
            let mergedFields = try #require(try merged.jsonObject()["fields"] as? [String: Any])
            #expect(mergedFields["Name"] as? String == "Conflicted")
            #expect(mergedFields["Score"] as? Double == 2, "the other write's Score stays")
            #expect(merged.stderr.contains("changed since version 1 (now version 2)"), "\(merged.stderr)")
            #expect(merged.stderr.contains("Name = the server's"), "\(merged.stderr)")

            let kept = try await fixture.pyat([
                "records", "update", record.id.rawValue, "--field", "Score=9", "--if-version", "1",
                "--on-conflict", "server-wins", "--format", "json",
            ])
            #expect(kept.status == 0, "\(kept.stderr)")
            #expect(try #require(try kept.jsonObject()["fields"] as? [String: Any])["Score"] as? Double == 2)

            let overwritten = try await fixture.pyat([
                "records", "update", record.id.rawValue, "--field", "Score=9", "--if-version", "1",
                "--on-conflict", "client-wins", "--format", "json",
            ])
            #expect(overwritten.status == 0, "\(overwritten.stderr)")
            let current = try await fixture.withClient { try await $0.records.get(record.id) }
            #expect(current.fields["Score"] == .number(9))
            #expect(current.version == 3)
            #expect(overwritten.stderr.contains("wrote this change over it (clientWins)"), "\(overwritten.stderr)")

            let keptDelete = try await fixture.pyat([
                "records", "delete", record.id.rawValue, "--if-version", "1", "--on-conflict", "server-wins",
            ])
            #expect(keptDelete.status == 4)
            #expect(keptDelete.stderr.contains("was kept"), "\(keptDelete.stderr)")

            let bad = try await fixture.pyat(["records", "delete", record.id.rawValue, "--on-conflict", "maybe"])
            #expect(bad.status == 2)
        }
    }
}

@Suite("pyat records comments", .timeLimit(.minutes(15)))
struct RecordCommentsCommandsTests {
    @Test("add (with a mention), list newest first, edit and delete a record's comments")
    func lifecycle() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.projectsTable()
            let record = try await fixture.withClient {
                try await $0.records.create(in: table.id, fields: ["Name": "discussed"]).get()
            }
            let me = try await fixture.withClient { try await $0.users.me() }
            let added = try await fixture.pyat([
                "records", "comments", "add", record.id.rawValue, "Look @[\(me.id)]", "--format", "json",
            ])
            #expect(added.status == 0, "\(added.stderr)")
            let id = try #require(try added.jsonObject()["id"] as? String)
            #expect((try added.jsonObject()["mentions"] as? [[String: Any]])?.first?["id"] as? String == me.id.rawValue)
            _ = try await fixture.pyat(["records", "comments", "add", record.id.rawValue, "second"])

            let list = try await fixture.pyat(["records", "comments", "list", record.id.rawValue, "--format", "json"])
            #expect(list.status == 0, "\(list.stderr)")
            #expect(try list.jsonArray().compactMap { $0["text"] as? String } == ["second", "Look @[\(me.id)]"])
            let table2 = try await fixture.pyat(["records", "comments", "list", record.id.rawValue])
            #expect(table2.stdoutLines.first?.hasPrefix("id") == true && table2.stdout.contains("second"))

            let edited = try await fixture.pyat(["records", "comments", "edit", id, "edited", "--format", "json"])
            #expect(edited.status == 0, "\(edited.stderr)")
            #expect(try edited.jsonObject()["text"] as? String == "edited")
            let deleted = try await fixture.pyat(["records", "comments", "delete", id, "--format", "json"])
            #expect(deleted.status == 0, "\(deleted.stderr)")
            #expect(try deleted.jsonObject()["deleted"] as? Bool == true)
            let empty = try await fixture.pyat(["records", "comments", "add", record.id.rawValue, " "])
            #expect(empty.status == 1 && empty.stderr.contains("text"), "\(empty.stderr)")
        }
    }
}
