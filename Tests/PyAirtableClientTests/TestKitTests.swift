import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import PyAirtableTesting
import ReferenceServer
import ReferenceServerTesting
import Testing

@Suite("MockTransport", .timeLimit(.minutes(15)))
struct MockTransportTests {
    static let request = ClientRequest(
        method: .get,
        path: "/api/v1/users/me",
        operation: ClientOperation(service: "users", name: "me")
    )

    @Test("scripted failures become the SDK's transport errors")
    func failuresMapToSDKErrors() async throws {
        let mock = MockTransport([.connectionRefused, .timeout, .connectionReset, .error(PyAirtableError.forbidden)])
        let url = Fixtures.mockURL
        let refused = await #expect(throws: PyAirtableError.self) {
            try await mock.send(Self.request, baseURL: url, timeout: .seconds(1))
        }
        #expect(refused == .transportFailure)
        #expect((refused?.underlying as? MockTransport.TransportFailure) == .connectionRefused)
        await #expect(throws: PyAirtableError.timeout) {
            try await mock.send(Self.request, baseURL: url, timeout: .seconds(1))
        }
        await #expect(throws: PyAirtableError.transportFailure) {
            try await mock.send(Self.request, baseURL: url, timeout: .seconds(1))
        }
        await #expect(throws: PyAirtableError.forbidden) {
            try await mock.send(Self.request, baseURL: url, timeout: .seconds(1))
        }
        #expect(mock.requestCount == 4)
        #expect(mock.exchanges.allSatisfy { $0.error != nil && $0.response == nil })
        await #expect(throws: MockTransport.ScriptError.self) {
            try await mock.send(Self.request, baseURL: url, timeout: .seconds(1))
        }
    }

    @Test(".status builds the wire error body with Retry-After")
    func statusOutcome() async throws {
        let response = MockTransport.errorResponse(429, retryAfter: .milliseconds(1500), message: "slow down")
        #expect(response.status.code == 429)
        #expect(response.headerFields[HTTPField.Name(HeaderName.retryAfter)!] == "1.5")
        let body = try JSONCoding.decoder.decode(
            ErrorResponse.self,
            from: try #require(try await response.body?.collect(upTo: 1 << 20))
        )
        #expect(body.error.type == .rateLimited)
        #expect(body.error.message == "slow down")
        #expect(body.error.requestID == response.headerFields[HTTPField.Name(HeaderName.requestID)!])
    }

    @Test("a handler decides per request and sees each request's index")
    func handler() async throws {
        let mock = MockTransport { request, index in
            index == 0 ? .status(503) : try .json(Page<Workspace>(data: []))
        }
        let client = Fixtures.mockClient(mock, clock: TestClock(), retry: .none)
        await #expect(throws: PyAirtableError.server) { try await client.workspaces.list() }
        #expect(try await client.workspaces.list().isEmpty)
        #expect(mock.requests.map(\.path) == ["/api/v1/workspaces", "/api/v1/workspaces"])
        #expect(mock.requests.allSatisfy { $0.headerFields[.authorization] == "Bearer pat_test" })
    }

    @Test("passThrough and dropResponseAfterSending reach the real server; the drop still throws")
    func forwarding() async throws {
        try await TestServer.withRunning { server in
            let mock = MockTransport(
                [.dropResponseAfterSending, .passThrough],
                forwardingTo: AsyncHTTPClientTransport()
            )
            try await Fixtures.withClient(server, token: nil, transport: mock) { client in
                let probe = ClientRequest(
                    method: .get,
                    path: "/health",
                    operation: ClientOperation(service: "health", name: "get")
                )
                await #expect(throws: PyAirtableError.transportFailure) {
                    try await mock.send(probe, baseURL: URL(string: server.url)!, timeout: .seconds(60))
                }
                let first = try await client.health()
                let second = try await client.health()
                #expect(first.status == "ok")
                #expect(second.status == "ok", "after the script, requests pass through")
                #expect(mock.requestCount == 3)
                #expect(mock.exchanges.last?.response?.status == .ok)
            }
        }
    }
}
