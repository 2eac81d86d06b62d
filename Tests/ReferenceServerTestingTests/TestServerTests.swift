import Foundation
import ReferenceServer
import ReferenceServerTesting
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@Suite("TestServer", .timeLimit(.minutes(15)))
struct TestServerTests {
    @Test("starts on an ephemeral port, serves /health and the seeded demo token, and removes its data")
    func lifecycle() async throws {
        let directory = try await TestServer.withRunning { server in
            #expect(server.port > 0)
            let (data, response) = try await URLSession.shared.data(from: URL(string: server.url + "/health")!)
            #expect((response as? HTTPURLResponse)?.statusCode == 200)
            #expect(String(decoding: data, as: UTF8.self).contains(#""status":"ok""#))

            let demo = try await server.seedDemo()
            var request = URLRequest(url: URL(string: server.url + "/api/v1/workspaces")!)
            request.setValue("Bearer \(demo.token)", forHTTPHeaderField: "Authorization")
            let (body, answer) = try await URLSession.shared.data(for: request)
            #expect((answer as? HTTPURLResponse)?.statusCode == 200)
            #expect(String(decoding: body, as: UTF8.self).contains("Demo workspace"))
            return server.services.configuration.dataDirectory
        }
        #expect(!FileManager.default.fileExists(atPath: directory))
    }
}
