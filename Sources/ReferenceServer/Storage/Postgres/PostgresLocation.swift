import Foundation
import PostgresNIO

/// Where a PostgreSQL database is and how to sign in to it, from a `postgres://` URL:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require][&host=/socket/dir]`.
///
/// The password is best left out of the URL (command lines are visible to every local user):
/// `PGPASSWORD` supplies it when the URL has none. ``description`` never shows it.
public struct PostgresLocation: Sendable, Hashable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, Hashable {
        case disable, prefer, require
    }

    public var host: String
    public var port: Int
    /// A directory holding the server's Unix socket (`?host=/dir`), used instead of TCP.
    public var socketDirectory: String?
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    public init(
        host: String = "127.0.0.1",
        port: Int = 5432,
        socketDirectory: String? = nil,
        user: String,
        password: String? = nil,
        database: String,
        tls: TLSMode = .prefer
    ) {
        self.host = host
        self.port = port
        self.socketDirectory = socketDirectory
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// Parses a `postgres://` or `postgresql://` URL.
    /// - Parameter environment: Supplies `PGPASSWORD` when the URL has no password.
    public init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let components = URLComponents(string: text),
            let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw ServerConfigurationError(
                message: "--database must be a postgres://user@host:port/database URL (or the path of a SQLite file)"
            )
        }
        guard let user = components.user, !user.isEmpty else {
            throw ServerConfigurationError(message: "the database URL names no user (postgres://USER@host/database)")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw ServerConfigurationError(
                message: "the database URL names no database (postgres://user@host/DATABASE)"
            )
        }
        var tls = TLSMode.prefer
        var socketDirectory: String?
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                switch item.value {
                case "disable": tls = .disable
                case "allow", "prefer": tls = .prefer
                case "require", "verify-ca", "verify-full": tls = .require
                default:
                    throw ServerConfigurationError(
                        message: "the database URL's sslmode must be disable, prefer or require"
                    )
                }
            case "host":
                socketDirectory = item.value
            default:
                throw ServerConfigurationError(
                    message: "the database URL has an unknown parameter '\(item.name)' (known: sslmode, host)"
                )
            }
        }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else {
            throw ServerConfigurationError(message: "the database URL's port must be 1–65535")
        }
        self.init(
            host: components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1",
            port: port,
            socketDirectory: socketDirectory,
            user: user.removingPercentEncoding ?? user,
            password: components.password.map { $0.removingPercentEncoding ?? $0 } ?? environment["PGPASSWORD"],
            database: database.removingPercentEncoding ?? database,
            tls: tls
        )
    }

    /// Whether `text` is a PostgreSQL URL (rather than a SQLite file path).
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// The URL without its password: what logs and errors may show.
    public var description: String {
        let place = socketDirectory.map { "?host=\($0)" } ?? ""
        return "postgres://\(user)@\(host):\(port)/\(database)\(place)"
    }

    /// This location as a new URL with `database` in place of its own (tests make one database each).
    func with(database: String) -> PostgresLocation {
        var copy = self
        copy.database = database
        return copy
    }

    /// The `application_name` of the pool's connections.
    static let applicationName = "pyat"
    /// The `application_name` of each instance's listening connection (the one that waits for
    /// `NOTIFY`): `pg_terminate_backend` on these is the "LISTEN connection killed" drill.
    static let listenApplicationName = "pyat-listen"

    func clientConfiguration(maximumConnections: Int) -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketDirectory {
            configuration = .init(
                unixSocketPath: (socketDirectory as NSString).appendingPathComponent(".s.PGSQL.\(port)"),
                username: user,
                password: password,
                database: database
            )
        } else {
            let tlsConfiguration: PostgresClient.Configuration.TLS
            switch tls {
            case .disable: tlsConfiguration = .disable
            case .prefer: tlsConfiguration = .prefer(.makeClientConfiguration())
            case .require: tlsConfiguration = .require(.makeClientConfiguration())
            }
            configuration = .init(
                host: host,
                port: port,
                username: user,
                password: password,
                database: database,
                tls: tlsConfiguration
            )
        }
        configuration.options.maximumConnections = maximumConnections
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = .seconds(5)
        // So an operator tells pyat's connections apart in pg_stat_activity.
        configuration.options.additionalStartupParameters = [("application_name", Self.applicationName)]
        return configuration
    }
}
