import Foundation
import Synchronization

/// A wall clock that moves only when the test moves it: expiry, retention and TTLs without sleeping.
///
/// Hand `{ clock.now }` to whatever takes a `now` closure (the server's configuration, the cache, the
/// offline queue). For code that sleeps, use `TestClock` from PyAirtableTesting instead.
package final class ManualWallClock: Sendable {
    private let current: Mutex<Date>

    /// A clock standing at `start` (by default a fixed instant in 2027, so tests do not depend on today).
    package init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        current = Mutex(start)
    }

    /// The clock's current time.
    package var now: Date { current.withLock { $0 } }

    /// Moves the clock forward by `duration`.
    package func advance(by duration: Duration) {
        let components = duration.components
        let seconds = Double(components.seconds) + Double(components.attoseconds) / 1e18
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }

    /// Moves the clock forward by `seconds`.
    package func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }
}
