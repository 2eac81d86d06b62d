import ClientCache
import HTTPTypes
import PyAirtableModels

/// Every item of a listing, fetched a page at a time as the loop asks for more, following the
/// server's `next_cursor`. Breaking out of the loop stops fetching.
///
/// Every listing of the SDK is read through one: ``RecordsService/all(in:query:policy:)``,
/// ``FilesService/all(in:pageSize:)`` and ``WebhooksService/allDeliveries(of:status:pageSize:)``; the
/// `list` of the small collections (workspaces, members, bases, tables, fields, views, webhooks,
/// tokens) follows the cursor the same way and answers every item.
///
/// ```swift
/// for try await record in client.records.all(in: table, query: RecordQuery(sort: [.ascending("Name")])) {
///     print(record.fields["Name"] ?? .null)
/// }
/// let files = try await client.files.all().collect()
/// ```
public struct PageSequence<Element: Codable & Sendable>: AsyncSequence, Sendable {
    /// Fetches the page at `cursor` (`nil` for the first).
    let fetch: @Sendable (_ cursor: String?) async throws -> Page<Element>

    /// A sequence over the pages `fetch` returns.
    public init(fetch: @escaping @Sendable (_ cursor: String?) async throws -> Page<Element>) {
        self.fetch = fetch
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(fetch: fetch)
    }

    /// Every item, in order: all pages, fetched one after another.
    public func collect() async throws -> [Element] {
        var items: [Element] = []
        for try await item in self { items.append(item) }
        return items
    }

    /// Fetches the next page only when the current one is used up.
    public struct Iterator: AsyncIteratorProtocol {
        let fetch: @Sendable (_ cursor: String?) async throws -> Page<Element>
        var buffer: [Element] = []
        var index = 0
        var cursor: String?
        /// Every cursor followed, so a server that hands back an earlier one cannot make a loop.
        var seen: Set<String> = []
        var finished = false
        /// Pages fetched so far.
        public private(set) var pagesFetched = 0

        init(fetch: @escaping @Sendable (_ cursor: String?) async throws -> Page<Element>) {
            self.fetch = fetch
        }

        public mutating func next() async throws -> Element? {
            while index >= buffer.count {
                if finished { return nil }
                if Task.isCancelled { throw PyAirtableError.cancelledError }
                let page = try await fetch(cursor)
                pagesFetched += 1
                buffer = page.data
                index = 0
                // A cursor seen before would fetch the same pages forever.
                if let next = page.nextCursor, seen.insert(next).inserted {
                    cursor = next
                } else {
                    finished = true
                }
            }
            defer { index += 1 }
            return buffer[index]
        }
    }
}

extension PyAirtableClient {
    /// Every item of a small collection, through the cache: each page read under `kind`'s rule (or
    /// `policy`), following `next_cursor`. The answer is from the cache only when every page was, and
    /// stale or offline when any page was.
    func cachedCollection<T: Decodable & Sendable>(
        _ path: String,
        operation: ClientOperation,
        kind: CachedResource,
        policy: FetchPolicy?,
        tags: @escaping @Sendable (Page<T>) -> [CacheTag]
    ) async throws -> CachedResponse<[T]> {
        var cursor: String?
        var seen: Set<String> = []
        var answer: CachedResponse<[T]>?
        repeat {
            let page = try await cachedRead(
                Self.request(.get, path, query: cursor.map { [QueryItem("cursor", $0)] } ?? [], operation: operation),
                as: Page<T>.self,
                kind: kind,
                policy: policy,
                tags: tags
            )
            if var merged = answer {
                merged.value += page.value.data
                merged.fromCache = merged.fromCache && page.fromCache
                merged.isStale = merged.isStale || page.isStale
                merged.storedAt = [merged.storedAt, page.storedAt].compactMap { $0 }.min()
                merged.networkError = merged.networkError ?? page.networkError
                answer = merged
            } else {
                answer = page.map(\.data)
            }
            cursor = page.value.nextCursor.flatMap { seen.insert($0).inserted ? $0 : nil }
        } while cursor != nil
        return answer!
    }

    /// Every item of a small, uncached collection, following `next_cursor`.
    func collection<T: Codable & Sendable>(_ path: String, operation: ClientOperation) async throws -> [T] {
        try await PageSequence<T> { cursor in
            try await self.send(
                Self.request(.get, path, query: cursor.map { [QueryItem("cursor", $0)] } ?? [], operation: operation),
                as: Page<T>.self
            )
        }
        .collect()
    }
}
