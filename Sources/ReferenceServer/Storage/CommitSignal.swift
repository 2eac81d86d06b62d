import Synchronization

/// Tells observers that a write transaction committed, so they can read what it appended.
///
/// Observers run on the writer's thread right after the commit: they must only note the fact
/// (set a flag, start a task), never read or write the database themselves.
public final class CommitSignal: Sendable {
    private let observers = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    /// Adds an observer called after every commit from now on.
    public func observe(_ observer: @escaping @Sendable () -> Void) {
        observers.withLock { $0.append(observer) }
    }

    /// Calls every observer.
    func fire() {
        let current = observers.withLock { $0 }
        for observer in current { observer() }
    }
}
