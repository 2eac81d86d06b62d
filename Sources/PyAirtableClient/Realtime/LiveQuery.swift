import Foundation
import PyAirtableModels
import Synchronization

extension RecordsService {
    /// A live query: the page of records matching `query`, now and whenever it changes.
    ///
    /// Yields the cached answer first (when the cache holds one), then the server's, then a new answer
    /// after every event that can change it — a record of the table created, updated or deleted, or its
    /// fields or views changed. Events arriving while a refetch runs are coalesced into one more
    /// refetch, so a burst of writes costs two reads, not one per write. An answer equal to the last
    /// one yielded is not repeated. Ending the loop unsubscribes.
    ///
    /// This client's own pending writes show at once: when a write begins, is confirmed or rolled
    /// back, the page is answered again with pending writes applied (``CachedResponse/hasPendingWrites``).
    ///
    /// ```swift
    /// for try await page in client.records.watch(in: table, query: RecordQuery(filter: "{Status} = 'Todo'")) {
    ///     render(page.value.data, then: page.pendingCreates)   // page.fromCache, page.isStale say where it came from
    /// }
    /// ```
    public func watch(
        in table: TableID,
        query: RecordQuery = RecordQuery()
    ) -> AsyncThrowingStream<CachedResponse<Page<Record>>, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: CachedResponse<Page<Record>>.self,
            throwing: (any Error).self,
            bufferingPolicy: .bufferingNewest(1)
        )
        let service = self
        let task = Task {
            do {
                try await LiveQueryRunner(service: service, table: table, query: query, continuation: continuation)
                    .run()
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}

/// Runs one live query: subscribes first (so no change between the read and the subscription is
/// missed), then reads, then re-reads on each relevant event.
private struct LiveQueryRunner {
    let service: RecordsService
    let table: TableID
    let query: RecordQuery
    let continuation: AsyncThrowingStream<CachedResponse<Page<Record>>, any Error>.Continuation

    func run() async throws {
        let realtime = service.client.realtime
        // From the log's head as of now, so no change after this line is missed (a subscription
        // without a position would start whenever the server receives it).
        let updates = realtime.subscribe(EventFilter(tableID: table), since: try await realtime.latestSeq())
        let changed = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        // Whether the server reported a change since the last read (else only pending writes moved).
        let serverChanged = Mutex(false)
        let listener = Task {
            do {
                for try await update in updates {
                    if case .event(let event) = update, Self.changesRecords(event.type) {
                        serverChanged.withLock { $0 = true }
                        changed.continuation.yield()
                    } else if case .reset = update {
                        serverChanged.withLock { $0 = true }
                        changed.continuation.yield()
                    }
                }
                changed.continuation.finish()
            } catch {
                changed.continuation.finish()
            }
        }
        defer { listener.cancel() }
        let layerChanges = service.client.optimistic.changes.subscribe()
        let layerListener = Task {
            for await _ in layerChanges { changed.continuation.yield() }
        }
        defer { layerListener.cancel() }

        var last: CachedResponse<Page<Record>>?
        if let cached = try? await service.listWithSource(in: table, query: query, policy: .cacheOnly) {
            continuation.yield(cached)
            last = cached
        }
        let fresh = try await service.listWithSource(in: table, query: query, policy: .networkFirst)
        if last.map({ !Self.same($0, fresh) }) ?? true {
            continuation.yield(fresh)
            last = fresh
        }
        for await _ in changed.stream {
            if Task.isCancelled { return }
            let fromServer = serverChanged.withLock { changed in
                defer { changed = false }
                return changed
            }
            // A pending write alone changes nothing on the server: the cached page, with layers, is
            // the answer (the server is asked when the cache no longer holds the page).
            let answer = try await service.listWithSource(
                in: table,
                query: query,
                policy: fromServer ? .networkFirst : .cacheFirst
            )
            if last.map({ !Self.same($0, answer) }) ?? true {
                continuation.yield(answer)
                last = answer
            }
        }
    }

    static func changesRecords(_ type: EventType) -> Bool {
        type.rawValue.hasPrefix("record.") || type.rawValue.hasPrefix("field.") || type.rawValue.hasPrefix("view.")
            || type == .tableUpdated || type == .tableDeleted
    }

    static func same(_ lhs: CachedResponse<Page<Record>>, _ rhs: CachedResponse<Page<Record>>) -> Bool {
        lhs.value.nextCursor == rhs.value.nextCursor && lhs.value.data == rhs.value.data
            && lhs.pendingCreates == rhs.pendingCreates
    }
}
