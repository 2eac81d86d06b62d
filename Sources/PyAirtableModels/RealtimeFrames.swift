/// A frame the client sends over `GET /api/v1/ws`.
public enum RealtimeClientFrame: Codable, Sendable, Hashable {
    /// Start a subscription `id` on `channel` (such as `records`), narrowed by `filters`, from `since`.
    case subscribe(id: String, channel: String, filters: EventFilter, since: Int64?)
    case unsubscribe(id: String)
    case ping

    enum CodingKeys: String, CodingKey {
        case type, id, channel, filters, since
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "subscribe":
            self = .subscribe(
                id: try container.decode(String.self, forKey: .id),
                channel: try container.decodeIfPresent(String.self, forKey: .channel) ?? "events",
                filters: try container.decodeIfPresent(EventFilter.self, forKey: .filters) ?? EventFilter(),
                since: try container.decodeIfPresent(Int64.self, forKey: .since)
            )
        case "unsubscribe":
            self = .unsubscribe(id: try container.decode(String.self, forKey: .id))
        case "ping":
            self = .ping
        case let other:
            throw DecodingError.dataCorruptedError(
                forKey: .type,
                in: container,
                debugDescription: "unknown frame type '\(other)'"
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .subscribe(let id, let channel, let filters, let since):
            try container.encode("subscribe", forKey: .type)
            try container.encode(id, forKey: .id)
            try container.encode(channel, forKey: .channel)
            try container.encode(filters, forKey: .filters)
            try container.encodeIfPresent(since, forKey: .since)
        case .unsubscribe(let id):
            try container.encode("unsubscribe", forKey: .type)
            try container.encode(id, forKey: .id)
        case .ping:
            try container.encode("ping", forKey: .type)
        }
    }
}

/// A frame the server sends over `GET /api/v1/ws`.
public enum RealtimeServerFrame: Codable, Sendable, Hashable {
    case subscribed(subscription: String, seq: Int64)
    case event(subscription: String, event: Event)
    /// The asked-for `since` is older than the retained log: refetch, then resume from `seq`.
    case reset(subscription: String, seq: Int64)
    case pong
    case error(subscription: String?, error: APIErrorDetail)

    enum CodingKeys: String, CodingKey {
        case type, subscription, seq, event, error
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "subscribed":
            self = .subscribed(
                subscription: try container.decode(String.self, forKey: .subscription),
                seq: try container.decode(Int64.self, forKey: .seq)
            )
        case "event":
            self = .event(
                subscription: try container.decode(String.self, forKey: .subscription),
                event: try container.decode(Event.self, forKey: .event)
            )
        case "reset":
            self = .reset(
                subscription: try container.decode(String.self, forKey: .subscription),
                seq: try container.decode(Int64.self, forKey: .seq)
            )
        case "pong":
            self = .pong
        case "error":
            self = .error(
                subscription: try container.decodeIfPresent(String.self, forKey: .subscription),
                error: try container.decode(APIErrorDetail.self, forKey: .error)
            )
        case let other:
            throw DecodingError.dataCorruptedError(
                forKey: .type,
                in: container,
                debugDescription: "unknown frame type '\(other)'"
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .subscribed(let subscription, let seq):
            try container.encode("subscribed", forKey: .type)
            try container.encode(subscription, forKey: .subscription)
            try container.encode(seq, forKey: .seq)
        case .event(let subscription, let event):
            try container.encode("event", forKey: .type)
            try container.encode(subscription, forKey: .subscription)
            try container.encode(event, forKey: .event)
        case .reset(let subscription, let seq):
            try container.encode("reset", forKey: .type)
            try container.encode(subscription, forKey: .subscription)
            try container.encode(seq, forKey: .seq)
        case .pong:
            try container.encode("pong", forKey: .type)
        case .error(let subscription, let error):
            try container.encode("error", forKey: .type)
            try container.encodeIfPresent(subscription, forKey: .subscription)
            try container.encode(error, forKey: .error)
        }
    }
}
