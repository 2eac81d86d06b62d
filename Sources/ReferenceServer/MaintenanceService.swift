import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle

/// Trims the event log past its retention, drops expired idempotency answers and the bytes of files
/// no longer referenced, hourly.
struct MaintenanceService: Service {
    let services: ServerServices
    /// The wait between two passes, on the configuration's clock.
    static let interval: Duration = .seconds(3600)

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await runOnce()
            try? await cancelWhenGracefulShutdown { try await services.configuration.clock.sleep(for: Self.interval) }
        }
    }

    func runOnce() async {
        do {
            // One instance's pass at a time when several share the store; the others skip theirs.
            let ran: Bool? = try await services.store.exclusively(.maintenance, wait: false) {
                await pass()
                return true
            }
            if ran == nil { services.logger.debug("maintenance: another instance is running its pass") }
        } catch {
            services.logger.warning("maintenance failed", metadata: ["error": "\(error)"])
        }
    }

    private func pass() async {
        let now = services.configuration.now()
        do {
            let purged = try await services.store.purgeIdempotencyKeys(now: now)
            try await services.blobs.removeUnreferenced(store: services.store)
            let trimmed = try await services.store.trimEvents(
                olderThan: now.addingTimeInterval(-services.configuration.eventRetention)
            )
            if purged + trimmed > 0 {
                services.logger.info(
                    "maintenance",
                    metadata: ["idempotency_purged": "\(purged)", "events_trimmed": "\(trimmed)"]
                )
            }
        } catch {
            services.logger.warning("maintenance failed", metadata: ["error": "\(error)"])
        }
    }
}
