import Synchronization

/// A counter tasks share.
package final class Counter: Sendable {
    private let value = Mutex(0)

    package init() {}

    /// Adds one and returns the new value.
    @discardableResult
    package func increment() -> Int {
        value.withLock { value in
            value += 1
            return value
        }
    }

    /// The value now.
    package var current: Int { value.withLock { $0 } }
}
