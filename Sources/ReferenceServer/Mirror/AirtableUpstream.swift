import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PyAirtableModels

/// The mirror's client of an upstream Airtable Web API v0: paced to the upstream's rate limit per
/// base, 429s waited out as their `Retry-After` says (Airtable's 30 s without one), failed
/// connections and 5xx answers retried with backoff, every answer bounded in size and nesting before
/// it is parsed (an upstream is as untrusted as any client).
final class AirtableUpstream: Sendable {
    private let configuration: MirrorConfiguration
    private let client: HTTPClient
    private let clock: any Clock<Duration>
    private let logger: Logger
    private let pacers: [BaseID: RequestPacer]

    init(configuration: MirrorConfiguration, client: HTTPClient, clock: any Clock<Duration>, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.clock = clock
        self.logger = logger
        let interval = Duration.nanoseconds(Int64((1_000_000_000 / configuration.requestsPerSecond).rounded(.up)))
        self.pacers = Dictionary(
            uniqueKeysWithValues: configuration.bases.map { ($0, RequestPacer(interval: interval)) }
        )
    }

    /// What one sync's requests did, for its report.
    final class Counters: @unchecked Sendable {
        // Touched by one sync's task only.
        var requests = 0
        var rateLimited = 0
    }

    /// The base's name, from `GET /v0/meta/bases` (paged).
    func baseName(_ base: BaseID, counters: Counters) async throws -> String? {
        var offset: String?
        repeat {
            var query = [URLQueryItem]()
            if let offset { query.append(URLQueryItem(name: "offset", value: offset)) }
            let answer = try await get(path: "/v0/meta/bases", query: query, base: base, counters: counters)
            guard case .array(let bases)? = answer["bases"] else { throw MirrorUpstreamError.malformed("meta/bases") }
            for entry in bases where entry["id"]?.stringValue == base.rawValue {
                return entry["name"]?.stringValue
            }
            offset = answer["offset"]?.stringValue
        } while offset != nil
        return nil
    }

    /// The base's tables, fields and views: `GET /v0/meta/bases/{base}/tables`.
    func tables(_ base: BaseID, counters: Counters) async throws -> JSONValue {
        try await get(path: "/v0/meta/bases/\(base.rawValue)/tables", query: [], base: base, counters: counters)
    }

    /// One page of a table's records, cells keyed by field id.
    func records(
        _ base: BaseID,
        table: TableID,
        offset: String?,
        counters: Counters
    ) async throws -> (records: [JSONValue], offset: String?) {
        var query = [
            URLQueryItem(name: "pageSize", value: String(configuration.pageSize)),
            URLQueryItem(name: "returnFieldsByFieldId", value: "true"),
        ]
        if let offset { query.append(URLQueryItem(name: "offset", value: offset)) }
        let answer = try await get(
            path: "/v0/\(base.rawValue)/\(table.rawValue)",
            query: query,
            base: base,
            counters: counters
        )
        guard case .array(let records)? = answer["records"] else {
            throw MirrorUpstreamError.malformed("the records of \(table)")
        }
        return (records, answer["offset"]?.stringValue)
    }

    // MARK: Requests

    private func url(path: String, query: [URLQueryItem]) throws -> String {
        guard var components = URLComponents(url: configuration.upstream, resolvingAgainstBaseURL: false) else {
            throw MirrorUpstreamError.malformed("the upstream URL")
        }
        let prefix = components.path.hasSuffix("/") ? String(components.path.dropLast()) : components.path
        components.path = prefix + path
        components.queryItems = query.isEmpty ? nil : query
        guard let url = components.string else { throw MirrorUpstreamError.malformed("the upstream URL") }
        return url
    }

    /// GETs a JSON object, paced, retried and bounded.
    private func get(path: String, query: [URLQueryItem], base: BaseID, counters: Counters) async throws -> JSONValue {
        let url = try url(path: path, query: query)
        var backoff = Duration.seconds(1)
        var attempt = 0
        while true {
            attempt += 1
            try await pacers[base]?.take()
            counters.requests += 1
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Authorization", value: "Bearer \(configuration.token)")
            request.headers.add(name: "Accept", value: "application/json")
            request.headers.add(name: "User-Agent", value: "pyat-mirror")
            var failure = MirrorUpstreamError.unreachable("no answer")
            var wait = backoff
            do {
                let response = try await client.execute(
                    request,
                    timeout: .nanoseconds(configuration.requestTimeout.nanosecondsValue)
                )
                let body = try await response.body.collect(upTo: configuration.maximumAnswerBytes)
                let status = response.status.code
                if (200..<300).contains(status) {
                    guard
                        let value = JSONValue.parse(
                            body.readableBytesView,
                            maximumDepth: configuration.maximumAnswerDepth
                        ),
                        case .object = value
                    else { throw MirrorUpstreamError.malformed("the answer to GET \(path)") }
                    return value
                }
                let (type, message) = Self.airtableError(body)
                failure = .status(Int(status), type: type, message: message, path: path)
                if status == 429 {
                    counters.rateLimited += 1
                    let seconds = response.headers.first(name: "Retry-After").flatMap(Double.init) ?? 30
                    wait = min(.milliseconds(Int64(max(0, seconds) * 1000)), configuration.maximumRetryAfter)
                    logger.warning(
                        "the mirror's upstream answered 429; waiting as it asked",
                        metadata: ["base": "\(base)", "retry_after_seconds": "\(seconds)"]
                    )
                } else if status >= 500 || status == 408 {
                    // Retried after the backoff.
                } else if status == 422, type == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE" || type == "INVALID_OFFSET_VALUE"
                {
                    throw MirrorUpstreamError.offsetExpired
                } else {
                    throw failure
                }
            } catch let error as MirrorUpstreamError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch let error as NIOTooManyBytesError {
                _ = error
                throw MirrorUpstreamError.tooLarge(path: path, limit: configuration.maximumAnswerBytes)
            } catch {
                if Task.isCancelled { throw CancellationError() }
                failure = .unreachable(String(describing: error))
            }
            guard attempt < configuration.maximumAttempts else { throw failure }
            logger.debug(
                "retrying an upstream request",
                metadata: ["path": "\(path)", "attempt": "\(attempt)", "error": "\(failure)"]
            )
            try await clock.sleep(for: wait)
            backoff = min(backoff * 2, .seconds(30))
        }
    }

    /// Airtable's error body: `{"error": {"type", "message"}}` or `{"error": "TYPE"}`.
    private static func airtableError(_ body: ByteBuffer) -> (type: String?, message: String?) {
        guard let value = JSONValue.parse(body.readableBytesView.prefix(64 << 10), maximumDepth: 8) else {
            return (nil, nil)
        }
        switch value["error"] {
        case .string(let type)?: return (type, nil)
        case .object(let error)?: return (error["type"]?.stringValue, error["message"]?.stringValue)
        default: return (nil, nil)
        }
    }
}

/// Why a request to the upstream failed for good.
enum MirrorUpstreamError: Error, CustomStringConvertible, Equatable {
    case status(Int, type: String?, message: String?, path: String)
    case unreachable(String)
    case malformed(String)
    case tooLarge(path: String, limit: Int)
    /// A page's offset is no longer valid upstream (Airtable's iterators expire): the table is read
    /// again from its first page.
    case offsetExpired

    var description: String {
        switch self {
        case .status(let status, let type, let message, let path):
            let detail = [type, message].compactMap { $0 }.joined(separator: ": ")
            return "the upstream answered \(status) to GET \(path)" + (detail.isEmpty ? "" : " (\(detail))")
        case .unreachable(let error): return "the upstream could not be reached: \(error)"
        case .malformed(let what): return "the upstream sent something that is not \(what) as Airtable's API gives it"
        case .tooLarge(let path, let limit): return "the upstream's answer to GET \(path) is larger than \(limit) bytes"
        case .offsetExpired: return "the upstream's page offset expired"
        }
    }
}

/// Spaces one base's requests `interval` apart (Airtable's 5 a second: 200 ms).
/// The pace is real time (it is the upstream's clock that counts), whatever clock the server's
/// other waits use.
actor RequestPacer {
    private let interval: Duration
    private var next = ContinuousClock.now

    init(interval: Duration) {
        self.interval = interval
    }

    /// Waits for this request's turn.
    func take() async throws {
        let now = ContinuousClock.now
        let slot = max(now, next)
        next = slot + interval
        if slot > now { try await Task.sleep(until: slot, clock: .continuous) }
    }
}
