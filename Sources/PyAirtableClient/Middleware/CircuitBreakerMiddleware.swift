import Foundation
import HTTPTypes
import Logging
import Metrics
import Synchronization

/// When a service's circuit opens and when it tries again.
public struct CircuitBreakerPolicy: Sendable, Hashable {
    /// Consecutive failed calls (network errors, timeouts, 5xx) that open the circuit.
    public var failureThreshold: Int
    /// How long the circuit stays open before one probe call is let through.
    public var resetTimeout: Duration

    public init(failureThreshold: Int = 5, resetTimeout: Duration = .seconds(30)) {
        self.failureThreshold = failureThreshold
        self.resetTimeout = resetTimeout
    }

    /// A breaker that never opens.
    public static let disabled = CircuitBreakerPolicy(failureThreshold: .max, resetTimeout: .zero)
}

/// The state of one service's circuit.
public enum CircuitState: String, Sendable, Hashable {
    case closed, open
    case halfOpen = "half_open"
}

/// One circuit breaker per service: after `failureThreshold` consecutive failures it fails calls at
/// once, without sending them; after `resetTimeout` it lets one probe through, and closes again
/// when the probe succeeds.
final class CircuitBreakerMiddleware<C: Clock<Duration>>: ClientMiddleware {
    private struct Circuit {
        var state: CircuitState = .closed
        var failures = 0
        var openedAt: C.Instant?
        var probeInFlight = false
    }

    private let policy: CircuitBreakerPolicy
    private let clock: C
    private let logger: Logger
    private let metricsPrefix: String
    private let circuits = Mutex<[ServiceName: Circuit]>([:])

    init(policy: CircuitBreakerPolicy, clock: C, logger: Logger, metricsPrefix: String) {
        self.policy = policy
        self.clock = clock
        self.logger = logger
        self.metricsPrefix = metricsPrefix
    }

    /// The current state of `service`'s circuit.
    func state(of service: ServiceName) -> CircuitState {
        circuits.withLock { $0[service]?.state ?? .closed }
    }

    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse {
        let service = request.operation.service
        let now = clock.now
        let decision = circuits.withLock { circuits -> Result<Bool, PyAirtableError> in
            var circuit = circuits[service] ?? Circuit()
            defer { circuits[service] = circuit }
            switch circuit.state {
            case .closed:
                return .success(false)
            case .open:
                let openedAt = circuit.openedAt ?? now
                let elapsed = openedAt.duration(to: now)
                if elapsed >= policy.resetTimeout {
                    circuit.state = .halfOpen
                    circuit.probeInFlight = true
                    return .success(true)
                }
                return .failure(.circuitOpen(service: service, retryIn: policy.resetTimeout - elapsed))
            case .halfOpen:
                if circuit.probeInFlight {
                    return .failure(.circuitOpen(service: service, retryIn: .zero))
                }
                circuit.probeInFlight = true
                return .success(true)
            }
        }
        let isProbe = try decision.get()
        do {
            let response = try await next(request)
            record(service: service, failed: response.status.code >= 500, probe: isProbe)
            return response
        } catch let error as PyAirtableError where error == .transportFailure || error == .timeout {
            record(service: service, failed: true, probe: isProbe)
            throw error
        } catch {
            // Cancellation and local errors say nothing about the server's health.
            if isProbe { circuits.withLock { $0[service]?.probeInFlight = false } }
            throw error
        }
    }

    private func record(service: ServiceName, failed: Bool, probe: Bool) {
        let now = clock.now
        let transition = circuits.withLock { circuits -> CircuitState? in
            var circuit = circuits[service] ?? Circuit()
            defer { circuits[service] = circuit }
            let before = circuit.state
            if probe { circuit.probeInFlight = false }
            if failed {
                circuit.failures += 1
                if circuit.state == .halfOpen || circuit.failures >= policy.failureThreshold {
                    circuit.state = .open
                    circuit.openedAt = now
                }
            } else {
                circuit.failures = 0
                circuit.state = .closed
                circuit.openedAt = nil
            }
            return circuit.state == before ? nil : circuit.state
        }
        if let transition {
            logger.info("circuit \(transition.rawValue)", metadata: ["service": "\(service)"])
            Gauge(label: "\(metricsPrefix)_circuit_open", dimensions: [("service", service.rawValue)])
                .record(transition == .open ? 1 : 0)
        }
    }
}
