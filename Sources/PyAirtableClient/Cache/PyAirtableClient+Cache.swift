import ClientCache
import Foundation
import HTTPTypes
import Logging
import PyAirtableModels
import Synchronization

extension PyAirtableClient {
    /// The client's cache: statistics and invalidation, for the signed-in account.
    ///
    /// ```swift
    /// try await client.cache.invalidate(tags: [.table(tableID)])
    /// print(try await client.cache.statistics()?.memoryHits ?? 0)
    /// ```
    public var cache: CacheControl { CacheControl(client: self) }

    /// Reads `request` through the cache under `kind`'s rule (or `policy`), decoding the answer as
    /// `type`; `tags` names what the answer contains, for invalidation.
    ///
    /// The server is asked conditionally (`If-None-Match`) when an entry with a validator is held, so
    /// an unchanged answer costs a 304. When the server cannot be reached (or is unavailable), a held
    /// entry answers — stale or expired if need be — with ``CachedResponse/networkError`` set. Any other
    /// failure (404, 403, …) is thrown, and a 404 or 403 also drops the held entry.
    func cachedRead<T: Decodable & Sendable>(
        _ request: ClientRequest,
        as type: T.Type,
        kind: CachedResource,
        policy: FetchPolicy?,
        tags: @escaping @Sendable (T) -> [CacheTag]
    ) async throws -> CachedResponse<T> {
        let rule = configuration.cache.rule(for: kind)
        let policy = policy ?? rule.policy
        guard let responseCache, let engine = responseCache.engine(for: await cacheIdentity())
        else {
            if policy == .cacheOnly { throw PyAirtableError.notCached(request.cacheKey, operation: request.operation) }
            return CachedResponse(value: try await send(request, as: type), fromCache: false)
        }
        let key = request.cacheKey
        let loaded = Mutex<T?>(nil)
        let result: FetchResult
        do {
            result = try await engine.fetch(key, policy: policy, lifetime: rule.lifetime) { cached in
                var request = request
                if let etag = cached?.etag { request.headerFields[.ifNoneMatch] = etag }
                let response: ClientResponse
                do {
                    response = try await self.execute(request)
                } catch let error as PyAirtableError where error == .notFound || error == .forbidden {
                    // Gone, or no longer ours to see: the held copy must not stand in for it.
                    _ = try? await engine.remove(key)
                    throw error
                }
                if response.status.code == 304 {
                    guard cached != nil else {
                        throw PyAirtableError.http(response, operation: request.operation)
                    }
                    return .notModified
                }
                let value = try Self.decode(type, from: response, operation: request.operation)
                loaded.withLock { $0 = value }
                return .value(response.data, tags: tags(value), etag: response.headerFields[.eTag])
            }
        } catch let error as ClientCacheError {
            if error == ClientCacheError.notCached(key) {
                throw PyAirtableError.notCached(key, operation: request.operation)
            }
            throw error
        }
        let networkError = result.loaderError.map { error in
            error as? PyAirtableError ?? PyAirtableError.transport(error, operation: request.operation)
        }
        if let networkError, !networkError.isRetryable {
            // The server answered, and not with something the cache may paper over.
            throw networkError
        }
        let value: T
        if let memo = responseCache.decoded(result.entry, engine: engine, as: T.self) {
            value = memo
        } else {
            if !result.fromCache, let fresh = loaded.withLock({ $0 }) {
                value = fresh
            } else {
                value = try Self.decode(type, from: result.value, operation: request.operation)
            }
            responseCache.remember(value, for: result.entry, engine: engine)
        }
        return CachedResponse(
            value: value,
            fromCache: result.fromCache,
            isStale: result.isStale,
            storedAt: result.entry.storedAt,
            networkError: networkError
        )
    }

    /// Brings the cache in line with a write the server accepted: drops entries providing
    /// `invalidating`, then stores `storing` (the written resources, as a later read would see them).
    /// A cache failure is logged, never thrown: the write itself succeeded.
    func cacheAfterWrite(invalidating tags: [CacheTag], storing: [CacheWrite] = [], everything: Bool = false) async {
        guard let responseCache, configuration.cache.isEnabled,
            let engine = responseCache.engine(for: await cacheIdentity())
        else { return }
        do {
            if everything {
                try await engine.clear()
                responseCache.forgetDecoded()
            } else if !tags.isEmpty {
                try await engine.invalidate(tags: tags)
            }
            for write in storing {
                try await engine.set(
                    write.key,
                    value: write.value,
                    tags: write.tags,
                    etag: write.etag,
                    lifetime: configuration.cache.rule(for: write.kind).lifetime
                )
            }
        } catch {
            configuration.logger.warning(
                "Could not update the cache after a write; clearing it",
                metadata: ["error": "\(error)"]
            )
            _ = try? await engine.clear()
        }
    }

    /// Brings the cache in line with a record the server just changed: the record's own entry holds
    /// the new version, and the table's lists are dropped — not only those showing the record, since a
    /// change can also move it into a filtered or sorted list that did not show it.
    func cacheAfterWrite(written record: Record) async {
        await cacheAfterWrite(
            invalidating: [.record(record.id), .recordLists(of: record.tableID)],
            storing: [CacheWrite.record(record)].compactMap { $0 }
        )
    }

    /// Brings the cache in line with events from the server: each drops what it changed; an updated
    /// or created record's own entry takes the record in the event.
    func cacheAfterEvents(_ events: [Event]) async {
        guard configuration.cache.isEnabled else { return }
        var tags: [CacheTag] = []
        var everything = false
        var stored: [String: CacheWrite] = [:]
        for event in events {
            tags += CacheKeys.tags(invalidatedBy: event)
            if event.type == .workspaceDeleted || event.type == .baseDeleted || event.type == .memberRemoved {
                everything = true
            }
            if event.type == .recordCreated || event.type == .recordUpdated,
                let record = try? event.payload.decode(as: Record.self), let write = CacheWrite.record(record)
            {
                stored[write.key] = write
            } else if let record = event.recordID {
                stored.removeValue(forKey: CacheKeys.record(record))
            }
        }
        // An event can be older than what this client already holds (its own write, answered first):
        // keep the newer version.
        if let responseCache, let engine = responseCache.engine(for: await cacheIdentity()) {
            for (key, write) in stored {
                guard let held = engine.get(key)?.entry, let heldVersion = held.etag.flatMap(VersionTag.parse),
                    let newVersion = write.etag.flatMap(VersionTag.parse), heldVersion > newVersion
                else { continue }
                stored[key] = CacheWrite(
                    key: key,
                    value: held.value,
                    tags: held.tags,
                    etag: held.etag,
                    kind: write.kind
                )
            }
        }
        await cacheAfterWrite(invalidating: Array(Set(tags)), storing: Array(stored.values), everything: everything)
    }

    /// After a reset the events since a subscription's position are unknown: drop what it covers.
    func cacheAfterReset(filters: [EventFilter]) async {
        var tags: [CacheTag] = []
        for filter in filters {
            if let record = filter.recordID {
                tags.append(.record(record))
            } else if let table = filter.tableID {
                tags += [.table(table), .records(of: table)]
            } else {
                await cacheAfterWrite(invalidating: [], everything: true)
                return
            }
        }
        await cacheAfterWrite(invalidating: tags)
    }

    static func decode<T: Decodable>(
        _ type: T.Type,
        from response: ClientResponse,
        operation: ClientOperation
    ) throws
        -> T
    {
        do {
            return try JSONCoding.decoder.decode(type, from: response.data)
        } catch {
            throw PyAirtableError.decoding(error, operation: operation, requestID: response.headerFields[.requestID])
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data, operation: ClientOperation) throws -> T {
        do {
            return try JSONCoding.decoder.decode(type, from: data)
        } catch {
            throw PyAirtableError.decoding(error, operation: operation, requestID: nil)
        }
    }
}

/// A resource written by the client, to be stored in the cache as a read of `key` would.
struct CacheWrite: Sendable {
    var key: String
    var value: Data
    var tags: [CacheTag]
    var etag: String?
    var kind: PyAirtableClient.CachedResource

    /// The entry of a record, as `GET /records/{id}` would cache it.
    static func record(_ record: Record) -> CacheWrite? {
        guard let data = try? JSONCoding.encoder.encode(record) else { return nil }
        return CacheWrite(
            key: CacheKeys.record(record.id),
            value: data,
            tags: CacheKeys.tags(of: record),
            etag: VersionTag.format(record.version),
            kind: .records
        )
    }
}

/// The cache's keys and tags for each resource, shared by reads, the client's own writes and (later)
/// realtime events.
///
/// The tags are ``ClientCache/CacheTag``'s SDK kinds (``ClientCache/CacheTag/Kind``).
enum CacheKeys {
    static func record(_ id: RecordID) -> String { "/api/v1/records/\(id)" }

    static func tags(of record: Record) -> [CacheTag] {
        [.record(record.id), .records(of: record.tableID)]
    }

    static func tags(of page: Page<Record>, table: TableID) -> [CacheTag] {
        var tags: [CacheTag] = [.recordLists(of: table), .records(of: table)]
        tags.reserveCapacity(page.data.count + 2)
        for record in page.data { tags.append(.record(record.id)) }
        return tags
    }

    /// The tags an event from the server invalidates.
    static func tags(invalidatedBy event: Event) -> [CacheTag] {
        let table = event.tableID
        switch event.type {
        case .recordCreated:
            return table.map { [.recordLists(of: $0)] } ?? []
        case .recordUpdated, .recordDeleted:
            var tags: [CacheTag] = event.recordID.map { [.record($0)] } ?? []
            if event.type == .recordUpdated, let table { tags.append(.recordLists(of: table)) }
            return tags
        case .fieldCreated, .fieldUpdated, .fieldDeleted, .tableUpdated, .tableDeleted:
            var tags: [CacheTag] = table.map { [.table($0), .records(of: $0)] } ?? [.every(.table), .every(.records)]
            if let base = event.baseID { tags.append(.tables(of: base)) }
            return tags
        case .tableCreated:
            return [event.baseID.map { .tables(of: $0) } ?? .every(.tables)]
        case .viewCreated, .viewUpdated, .viewDeleted:
            return table.map { [.table($0), .recordLists(of: $0)] } ?? [.every(.table), .every(.recordLists)]
        case .baseCreated:
            return [event.workspaceID.map { .bases(of: $0) } ?? .every(.bases)]
        case .baseUpdated:
            return [event.baseID.map { .base($0) } ?? .every(.base)]
        case .workspaceCreated:
            return [.workspaces]
        case .workspaceUpdated:
            return [event.workspaceID.map { .workspace($0) } ?? .every(.workspace)]
        case .memberAdded, .memberUpdated:
            return event.workspaceID.map { [.members(of: $0), .workspace($0), .workspaces] } ?? [.every(.members)]
        case .userUpdated:
            return [.every(.user)]
        default:
            return []
        }
    }

    static func tags(of table: Table) -> [CacheTag] {
        [.table(table.id)]
    }
}

extension ClientRequest {
    /// The cache key of a GET: its path and query, in order, with `&`, `=` and `%` escaped.
    var cacheKey: String {
        guard !query.isEmpty else { return path }
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "&", with: "%26")
                .replacingOccurrences(of: "=", with: "%3D")
        }
        return path + "?" + query.map { escape($0.name) + "=" + escape($0.value) }.joined(separator: "&")
    }
}

/// Statistics and invalidation of the client's cache, for the signed-in account; see
/// ``PyAirtableClient/cache``.
public struct CacheControl: Sendable {
    let client: PyAirtableClient

    /// Whether the client caches at all.
    public var isEnabled: Bool { client.configuration.cache.isEnabled }

    /// The account's cache engine, for direct use; `nil` when caching is off or the file cannot be opened.
    public func engine() async -> ClientCache? {
        guard isEnabled, let responseCache = client.responseCache else { return nil }
        return responseCache.engine(for: await client.cacheIdentity())
    }

    /// Hits, misses, stale answers, evictions and sizes of both tiers; `nil` when caching is off.
    public func statistics() async -> CacheStatistics? {
        await engine()?.statistics()
    }

    /// The decoded values kept beside the memory tier (bounded by
    /// ``PyAirtableClient/CacheSettings/decodedValueLimit`` and
    /// ``PyAirtableClient/CacheSettings/decodedValueMaximumBytes``), across accounts.
    public var decodedValues: DecodedValueFootprint {
        let (count, bytes) = client.responseCache?.decodedFootprint ?? (0, 0)
        return DecodedValueFootprint(count: count, bytes: bytes)
    }

    /// Drops every entry providing one of `tags` (see `CacheTag` for the rules).
    /// - Returns: How many entries were dropped.
    @discardableResult
    public func invalidate(tags: [CacheTag]) async throws -> Int {
        try await engine()?.invalidate(tags: tags) ?? 0
    }

    /// Drops every entry whose key (the request path and query, such as
    /// `/api/v1/tables/tbl…/records?page_size=10`) starts with `prefix`.
    /// - Returns: How many entries were dropped.
    @discardableResult
    public func invalidate(keyPrefix prefix: String) async throws -> Int {
        try await engine()?.invalidate(keyPrefix: prefix) ?? 0
    }

    /// Drops every entry of the signed-in account on this server.
    /// - Returns: How many entries were dropped.
    @discardableResult
    public func clear() async throws -> Int {
        client.responseCache?.forgetDecoded()
        return try await engine()?.clear() ?? 0
    }
}

/// What the table of decoded values holds: see ``CacheControl/decodedValues``.
public struct DecodedValueFootprint: Sendable, Hashable {
    /// Values kept.
    public var count: Int
    /// The sizes of the cached answers they were decoded from, summed (what the byte bound counts).
    public var bytes: Int
}
