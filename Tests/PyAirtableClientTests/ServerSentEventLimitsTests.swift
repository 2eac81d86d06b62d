import Foundation
import PropertyBased
import Testing

@testable import PyAirtableClient

@Suite("Server-Sent Events limits", .timeLimit(.minutes(15)))
struct ServerSentEventLimitsTests {
    @Test("an event whose data lines add up past the bound is an error, one at the bound is not")
    func eventSize() throws {
        // Lines of 9 bytes each ("012345678"), joined by line feeds: n lines are 10n - 1 bytes.
        let line = Array("data: 012345678\n".utf8)
        var atLimit = ServerSentEventParser(maximumLineLength: 64, maximumEventSize: 99)
        let ten = try atLimit.feed(Array(repeating: line, count: 10).joined() + Array("\n".utf8))
        #expect(ten.count == 1)
        #expect(ten.first?.data.utf8.count == 99)

        var overLimit = ServerSentEventParser(maximumLineLength: 64, maximumEventSize: 98)
        #expect(throws: ServerSentEventError.eventTooLarge) {
            _ = try overLimit.feed(Array(repeating: line, count: 10).joined())
        }
    }

    @Test("a stream of endless short data lines without a blank line stops at the bound")
    func endlessEvent() throws {
        var parser = ServerSentEventParser(maximumLineLength: 1024, maximumEventSize: 64 * 1024)
        let chunk = Array(String(repeating: "data: x\n", count: 1024).utf8)
        var fed = 0
        #expect(throws: ServerSentEventError.eventTooLarge) {
            while fed < 10_000_000 {
                _ = try parser.feed(chunk)
                fed += chunk.count
            }
        }
        #expect(fed < 1_000_000)
    }

    @Test("the client's settings carry the bound, 16 MiB unless changed")
    func settings() {
        #expect(RealtimeSettings().maximumMessageSize == 16 * 1024 * 1024)
    }
}

private let streamPieces: [String] = [
    "data: ", "data:", "id: ", "event: ", ": comment", "retry: 1", "x", "{\"a\":1}", "\n", "\n", "\r\n", "\r",
    "\n\n", "é", "\0", "data: 0123456789abcdef",
]

@Suite("Server-Sent Events parser properties", .timeLimit(.minutes(15)))
struct ServerSentEventPropertyTests {
    /// However a stream is cut into chunks, the same events come out, and nothing but the two limit
    /// errors is ever thrown.
    @Test func chunkingDoesNotChangeTheEvents() async {
        let stream = Gen<String?>.element(of: streamPieces).array(of: 0...120).map { $0.compactMap { $0 }.joined() }
        await propertyCheck(count: 300, input: stream, Gen.int(in: 1...17)) { text, chunkSize in
            let bytes = Array(text.utf8)
            func events(chunk: Int) -> Result<[ServerSentEvent], ServerSentEventError> {
                var parser = ServerSentEventParser(maximumLineLength: 40, maximumEventSize: 120)
                var events: [ServerSentEvent] = []
                var start = 0
                do {
                    while start < bytes.count {
                        let end = min(bytes.count, start + chunk)
                        events += try parser.feed(bytes[start..<end])
                        start = end
                    }
                } catch let error as ServerSentEventError {
                    return .failure(error)
                } catch {
                    Issue.record("unexpected error \(error)")
                }
                return .success(events)
            }
            let whole = events(chunk: max(1, bytes.count))
            let chunked = events(chunk: chunkSize)
            switch (whole, chunked) {
            case (.success(let a), .success(let b)): #expect(a == b, "\(text.debugDescription)")
            case (.failure, .failure): break
            default: Issue.record("chunking changed the outcome for \(text.debugDescription): \(whole) vs \(chunked)")
            }
            if case .success(let found) = whole {
                #expect(found.allSatisfy { $0.data.utf8.count <= 120 })
            }
        }
    }
}
