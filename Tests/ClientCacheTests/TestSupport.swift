import Foundation
import Synchronization
import TestSupport

@testable import ClientCache

extension TemporaryDirectory {
    var cacheFile: String { file("cache.sqlite") }
}

/// Counts loader calls and answers what the test sets.
final class ScriptedLoader: Sendable {
    private struct State {
        var calls = 0
        var next: Result<CacheLoad, LoaderFailure> = .success(.value(Data("v1".utf8)))
    }

    struct LoaderFailure: Error {}

    private let state = Mutex(State())

    var calls: Int { state.withLock { $0.calls } }

    func answer(_ load: CacheLoad) {
        state.withLock { $0.next = .success(load) }
    }

    func answer(_ text: String, tags: [CacheTag] = [], etag: String? = nil) {
        answer(.value(Data(text.utf8), tags: tags, etag: etag))
    }

    func fail() {
        state.withLock { $0.next = .failure(LoaderFailure()) }
    }

    func load(_ cached: CacheEntry?) throws -> CacheLoad {
        try state.withLock { state in
            state.calls += 1
            return try state.next.get()
        }
    }
}

/// A gate a loader waits on until the test opens it.
actor Gate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private(set) var arrivals = 0

    func wait() async {
        arrivals += 1
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        for waiter in waiters { waiter.resume() }
        waiters.removeAll()
    }
}

extension ClientCache {
    static func make(
        path: String,
        clock: ManualWallClock,
        user: String = "usr1",
        memoryMaximumEntries: Int = 1000,
        memoryMaximumBytes: Int = 1 << 20,
        diskMaximumBytes: Int = 1 << 24
    ) throws -> ClientCache {
        try ClientCache(
            configuration: Configuration(
                path: path,
                namespace: CacheNamespace(serverURL: "http://127.0.0.1:8080", user: user),
                memoryMaximumEntries: memoryMaximumEntries,
                memoryMaximumBytes: memoryMaximumBytes,
                diskMaximumBytes: diskMaximumBytes,
                defaultLifetime: CacheLifetime(ttl: .seconds(60), staleWhileRevalidate: .seconds(30)),
                coherenceInterval: .zero,
                now: { clock.now }
            )
        )
    }

    func text(_ key: String) -> String? {
        get(key).map { String(decoding: $0.entry.value, as: UTF8.self) }
    }
}

extension CacheEntry {
    static func sizeForTest(key: String, value: String, tags: [String]) -> Int {
        key.utf8.count + value.utf8.count + tags.reduce(0) { $0 + $1.utf8.count }
    }
}

extension FetchResult {
    var text: String { String(decoding: value, as: UTF8.self) }
}
