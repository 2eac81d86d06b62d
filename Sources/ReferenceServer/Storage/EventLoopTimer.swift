import NIOCore
import NIOPosix

/// Sleeps on an event loop's timer: a timer on a loop (a heap entry there) costs far less to set and
/// cancel than a sleeping task's dispatch timer, which matters for the waits set on every database
/// lease and fan-out read. For real time only: what a test's clock governs sleeps on that clock.
enum EventLoopTimer {
    /// Sleeps for `duration` or until the task is cancelled.
    static func sleep(for duration: Duration) async {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        let timer = loop.scheduleTask(in: .nanoseconds(nanoseconds)) {}
        await withTaskCancellationHandler {
            _ = try? await timer.futureResult.get()
        } onCancel: {
            timer.cancel()
        }
    }
}
