import Foundation
import HTTPTypes
import PyAirtableModels
import Testing

@testable import ReferenceServer

@Suite("Operational routes: health, metrics, stats", .timeLimit(.minutes(15)))
struct OperationsTests {
    @Test("/health answers without credentials and reports the database")
    func health() async throws {
        try await Harness.withServer { api, _ in
            let response = try await api.send(.get, "/health")
            #expect(response.status == .ok)
            let health = try response.decode(HealthStatus.self)
            #expect(health.status == "ok")
            #expect(health.database == "ok")
            #expect(health.version == ReferenceServerInfo.version)
        }
    }

    @Test("/metrics is Prometheus text counting requests by route pattern and status")
    func metrics() async throws {
        try await Harness.withServer { api, services in
            let (client, _) = try await api.register()
            let workspace = try await client.createWorkspace()
            _ = try await client.send(.get, "workspaces/wsp0000000000000x")
            let table = try await client.createTable(in: try await client.createBase(in: workspace.id).id)
            let record = try await client.createRecord(in: table.id, ["Name": "a"])
            _ = try await client.record(record.id)
            _ = try await client.record(record.id)
            let response = try await api.send(.get, "/metrics")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = response.text
            #expect(
                text.contains(#"pyat_http_requests_total{method="POST",route="/api/v1/workspaces",status="201"} 1"#)
            )
            #expect(text.contains(#"route="/api/v1/workspaces/{id}",status="404""#))
            #expect(text.contains("pyat_http_request_duration_seconds_bucket"))
            // Raw ids never become label values.
            #expect(!text.contains("wsp0000000000000x"))
            // The PostgreSQL store keeps no record cache (several instances write).
            if services.store.recordCacheStatistics != nil {
                // The second read of the record came from the record cache.
                let hits = text.split(separator: "\n").first {
                    $0.hasPrefix(#"pyat_record_cache_lookups_total{result="hit"}"#)
                }
                #expect(hits.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } == 1)
                #expect(text.contains("pyat_record_cache_entries 1"))
            }
        }
    }

    @Test("/api/v1/stats counts what the caller's workspaces hold, and the newest event")
    func stats() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            _ = try await client.createRecord(in: table.id, ["Name": "a"])
            _ = try await client.createRecord(in: table.id, ["Name": "b"])
            let stats = try await client.call(.get, "stats", as: ServerStats.self)
            #expect(stats.users == 1)
            #expect(stats.workspaces == 1)
            #expect(stats.bases == 1)
            #expect(stats.tables == 1)
            #expect(stats.records == 2)
            // workspace, base, table and two records: one event each.
            #expect(stats.events == 5)
            #expect(stats.lastEventSeq == 5)
            #expect(stats.scope == .workspaces)
            #expect(stats.requests == nil, "the server's request count is for operators")
            #expect(try await api.send(.get, "stats").status == .unauthorized)
        }
    }
}
