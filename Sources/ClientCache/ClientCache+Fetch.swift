import Foundation
import Logging
import Synchronization

extension ClientCache {
    /// Answers `key` from the cache or the loader, as `policy` says, storing what the loader answers.
    ///
    /// When the loader fails (offline) and the cache holds the key — even stale, or expired if
    /// ``Configuration/serveExpiredWhenLoaderFails`` — the cached value is answered with
    /// ``FetchResult/isStale`` and ``FetchResult/loaderError`` set. Under ``FetchPolicy/staleWhileRevalidate``
    /// a stale value is answered at once and one background load per key refreshes it.
    /// - Parameters:
    ///   - key: The key within this cache's namespace.
    ///   - policy: Where to look.
    ///   - lifetime: The lifetime of a loaded value; ``Configuration/defaultLifetime`` when `nil`.
    ///   - loader: Loads the value; it receives the cached entry, if any, for a conditional request.
    /// - Returns: The value, where it came from and whether it is stale.
    /// - Throws: ``ClientCacheError/notCached(_:)`` under ``FetchPolicy/cacheOnly`` on a miss; the loader's
    ///   error when nothing cached can stand in.
    public func fetch(
        _ key: String,
        policy: FetchPolicy = .cacheFirst,
        lifetime: CacheLifetime? = nil,
        loader: @escaping Loader
    ) async throws -> FetchResult {
        let now = configuration.now()
        switch policy {
        case .networkOnly:
            return try await load(key, cached: nil, lifetime: lifetime, loader: loader)

        case .cacheOnly:
            guard let hit = lookup(key, now: now, includeExpired: false) else { throw ClientCacheError.notCached(key) }
            return answer(hit, loaderError: nil)

        case .cacheFirst, .staleWhileRevalidate:
            let hit = lookup(key, now: now, includeExpired: configuration.serveExpiredWhenLoaderFails)
            if let hit, hit.freshness == .fresh {
                return answer(hit, loaderError: nil)
            }
            if policy == .staleWhileRevalidate, let hit, hit.freshness == .stale {
                revalidate(key, cached: hit.entry, lifetime: lifetime, loader: loader)
                return answer(hit, loaderError: nil)
            }
            return try await load(key, cached: hit?.entry, lifetime: lifetime, loader: loader, fallback: hit)

        case .networkFirst:
            let hit = lookup(key, now: now, includeExpired: configuration.serveExpiredWhenLoaderFails)
            return try await load(key, cached: hit?.entry, lifetime: lifetime, loader: loader, fallback: hit)
        }
    }

    /// Waits until every background revalidation started so far has finished.
    public func waitForRevalidations() async {
        while true {
            let tasks = state.withLock { Array($0.revalidations.values) }
            if tasks.isEmpty { return }
            for task in tasks { await task.value }
        }
    }

    private func answer(_ hit: CacheHit, loaderError: (any Error)?) -> FetchResult {
        let isStale = hit.freshness != .fresh
        if isStale {
            state.withLock { $0.statistics.staleServed += 1 }
        }
        return FetchResult(
            value: hit.entry.value,
            entry: hit.entry,
            source: .cache,
            isStale: isStale,
            loaderError: loaderError
        )
    }

    /// Runs the loader and stores its answer; on failure answers `fallback` if there is one.
    private func load(
        _ key: String,
        cached: CacheEntry?,
        lifetime: CacheLifetime?,
        loader: Loader,
        fallback: CacheHit? = nil
    ) async throws -> FetchResult {
        let loaded: CacheLoad
        do {
            loaded = try await loader(cached)
        } catch {
            guard let fallback, !(error is CancellationError) else { throw error }
            logger.debug("Loader failed; answering from cache", metadata: ["key": "\(key)", "error": "\(error)"])
            return answer(fallback, loaderError: error)
        }
        let entry: CacheEntry
        switch loaded {
        case .value(let value, let tags, let etag):
            entry = await store(key, value: value, tags: tags, etag: etag, lifetime: lifetime)
        case .notModified:
            guard let cached else { throw ClientCacheError.notModifiedWithoutEntry(key) }
            entry = await store(key, value: cached.value, tags: cached.tags, etag: cached.etag, lifetime: lifetime)
        }
        return FetchResult(value: entry.value, entry: entry, source: .loader, isStale: false, loaderError: nil)
    }

    /// Stores a loaded value; a failure to cache it is logged, not thrown, since the value is good.
    private func store(
        _ key: String,
        value: Data,
        tags: [CacheTag],
        etag: String?,
        lifetime: CacheLifetime?
    ) async -> CacheEntry {
        do {
            return try await set(key, value: value, tags: tags, etag: etag, lifetime: lifetime)
        } catch {
            logger.warning("Could not cache a loaded value", metadata: ["key": "\(key)", "error": "\(error)"])
            let now = configuration.now()
            return CacheEntry(key: key, value: value, tags: tags, storedAt: now, freshUntil: now, staleUntil: now)
        }
    }

    /// Starts one background load of `key`, unless one is already running.
    private func revalidate(_ key: String, cached: CacheEntry, lifetime: CacheLifetime?, loader: @escaping Loader) {
        state.withLock { state in
            guard state.revalidations[key] == nil else { return }
            state.statistics.revalidations += 1
            state.revalidations[key] = Task { [self] in
                do {
                    _ = try await load(key, cached: cached, lifetime: lifetime, loader: loader)
                } catch {
                    logger.debug("Background revalidation failed", metadata: ["key": "\(key)", "error": "\(error)"])
                }
                _ = self.state.withLock { $0.revalidations.removeValue(forKey: key) }
            }
        }
    }
}
