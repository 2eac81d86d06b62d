import Foundation
import PyAirtableModels

/// What the hub hands a connection, before the transport (WebSocket or SSE) gives it its wire form.
enum RealtimeMessage: Sendable {
    case subscribed(subscription: String, seq: Int64)
    /// `subscriptionJSON` is the subscription id as a JSON string literal, encoded once per subscription.
    case event(subscription: String, subscriptionJSON: String, event: RealtimeEvent)
    case reset(subscription: String, seq: Int64)
    case pong
    case error(subscription: String?, error: APIErrorDetail)
    /// SSE only: a comment line that keeps proxies and the client's watchdog content.
    case heartbeat

    /// About how many bytes the message takes on the wire, as an outbox counts it: the event's
    /// JSON and subscription id, plus a fixed allowance for the frame around them. Cheap (no
    /// encoding): `utf8.count` of a native string is stored.
    var byteCount: Int {
        switch self {
        case .event(_, let subscriptionJSON, let event):
            return event.json.utf8.count + subscriptionJSON.utf8.count + Self.frameOverhead
        case .error(let subscription, let error):
            return error.message.utf8.count + (subscription?.utf8.count ?? 0) + 2 * Self.frameOverhead
        case .subscribed(let subscription, _), .reset(let subscription, _):
            return subscription.utf8.count + Self.frameOverhead
        case .pong, .heartbeat:
            return Self.frameOverhead
        }
    }

    /// The bytes counted for a frame's envelope (type, keys, seq, SSE field names).
    static let frameOverhead = 64

    /// The WebSocket text frame: a `RealtimeServerFrame` as JSON. Events splice their pre-encoded JSON.
    var webSocketText: String? {
        let frame: RealtimeServerFrame
        switch self {
        case .event(_, let subscriptionJSON, let event):
            return "{\"event\":\(event.json),\"subscription\":\(subscriptionJSON),\"type\":\"event\"}"
        case .subscribed(let subscription, let seq):
            frame = .subscribed(subscription: subscription, seq: seq)
        case .reset(let subscription, let seq):
            frame = .reset(subscription: subscription, seq: seq)
        case .pong:
            frame = .pong
        case .error(let subscription, let error):
            frame = .error(subscription: subscription, error: error)
        case .heartbeat:
            return nil
        }
        guard let data = try? JSONCoding.encoder.encode(frame) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// The Server-Sent Events block; `nil` for frames SSE has no use for.
    var serverSentEvent: String? {
        switch self {
        case .event(_, _, let event):
            return "id: \(event.seq)\nevent: \(event.type)\ndata: \(Self.oneLine(event.json))\n\n"
        case .heartbeat:
            return ": heartbeat\n\n"
        case .error(_, let error):
            return Self.serverSentError(error)
        case .reset(_, let seq):
            return Self.serverSentError(
                APIErrorDetail(
                    type: .resyncRequired,
                    code: 410,
                    message: "events were trimmed from the log; refetch and resume from seq \(seq)"
                )
            )
        case .subscribed, .pong:
            return nil
        }
    }

    /// An `event: error` block carrying the contract's error body.
    static func serverSentError(_ error: APIErrorDetail) -> String {
        let data = (try? JSONCoding.encoder.encode(ErrorResponse(error: error))) ?? Data("{}".utf8)
        return "event: error\ndata: \(oneLine(String(decoding: data, as: UTF8.self)))\n\n"
    }

    /// JSON on one line: a raw line break can only be whitespace between tokens, so a space replaces it.
    static func oneLine(_ json: String) -> String {
        guard json.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else { return json }
        return String(json.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
    }

    /// The error a slow consumer is cut off with.
    static func slowConsumerError(capacity: Int, maximumBytes: Int) -> APIErrorDetail {
        APIErrorDetail(
            type: .rateLimited,
            code: 429,
            message:
                "slow consumer: more than \(capacity) messages or \(maximumBytes) bytes were waiting; "
                + "reconnect and resume from the last seq received"
        )
    }
}
