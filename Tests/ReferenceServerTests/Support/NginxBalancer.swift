import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real nginx in front of server instances, configured as `scripts/cluster` configures it: round
/// robin with passive failover, retries on another instance for idempotent requests only,
/// WebSockets over a new upstream connection each, Server-Sent Events unbuffered.
///
/// It runs from a directory of its own (`-p DIR -c DIR/nginx.conf`, logs and pid file there) on an
/// ephemeral port, in the foreground (`daemon off`) as a ``ChildProcess``, so it is stopped on every
/// path — and with the test process at the latest.
///
/// ```swift
/// try await NginxBalancer.withBalancer(over: [first.port, second.port]) { nginx in
///     // point clients at nginx.url
/// }
/// ```
struct NginxBalancer: Sendable {
    /// Where nginx listens, such as `http://127.0.0.1:49152`.
    let url: URL
    let port: Int
    /// Its prefix directory: configuration, logs, pid file and temporary files.
    let directory: String

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// The nginx binary. Missing is a failure, not a skip: the fault drills need a real balancer.
    static func executable() throws -> String {
        for path in ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw Failure(
            message: "nginx is not installed, and the cluster fault drills need it: run `apt-get install nginx` "
                + "(.ci/run installs it; Debian's own nginx service need not run)"
        )
    }

    /// Starts nginx over the instances listening on `upstreams` (loopback ports), runs `body`, and
    /// stops nginx, whether `body` returns or throws.
    static func withBalancer<T: Sendable>(
        over upstreams: [Int],
        _ body: (NginxBalancer) async throws -> T
    ) async throws -> T {
        let nginx = try executable()
        let directory = try TemporaryDirectory(prefix: "pyat-nginx")
        defer { withExtendedLifetime(directory) {} }
        let (balancer, process) = try await start(nginx, over: upstreams, in: directory.path)
        do {
            let value = try await body(balancer)
            await stop(process)
            return value
        } catch {
            await stop(process)
            throw error
        }
    }

    /// The last lines of nginx's error log, for failure messages.
    func errorLogTail() -> String {
        Self.tail(directory + "/logs/error.log")
    }

    // MARK: Starting and stopping

    private static func start(
        _ nginx: String,
        over upstreams: [Int],
        in directory: String
    ) async throws -> (NginxBalancer, ChildProcess) {
        try prepare(directory)
        // The port is picked free and then bound by nginx: another process may take it in between,
        // so a start that finds it taken tries another.
        var failures: [String] = []
        for _ in 0..<5 {
            let port = try freePort()
            try configuration(port: port, upstreams: upstreams, directory: directory)
                .write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
            let process = try ChildProcess(
                executable: nginx,
                arguments: [
                    "-p", directory + "/", "-c", directory + "/nginx.conf", "-e", directory + "/logs/error.log",
                ],
                environment: [:],
                stderrPath: directory + "/logs/stderr.log"
            )
            let deadline = ContinuousClock.now + .seconds(30)
            while process.status == nil, !accepts(port: port), ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            if process.status == nil, accepts(port: port) {
                let balancer = NginxBalancer(
                    url: URL(string: "http://127.0.0.1:\(port)")!,
                    port: port,
                    directory: directory
                )
                return (balancer, process)
            }
            await stop(process)
            let log = tail(directory + "/logs/error.log") + tail(directory + "/logs/stderr.log")
            failures.append(log)
            if !log.contains("Address already in use") { break }
        }
        throw Failure(message: "nginx did not start: \(failures.last ?? "no log")")
    }

    /// SIGTERM (nginx's fast shutdown, which closes open WebSockets at once), then SIGKILL to the
    /// whole process group (the workers with the master) if it lingers.
    private static func stop(_ process: ChildProcess) async {
        process.terminate()
        _ = await process.wait(timeout: .seconds(10))
    }

    /// Makes the directories nginx writes. Run as root, nginx's workers run as `nobody`: they need
    /// to traverse to their temporary files and write there (as `scripts/cluster` arranges).
    private static func prepare(_ directory: String) throws {
        let manager = FileManager.default
        try manager.createDirectory(atPath: directory + "/logs", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: directory + "/tmp", withIntermediateDirectories: true)
        guard geteuid() == 0 else { return }
        chmod(directory, 0o711)
        if let nobody = getpwnam("nobody"), let group = getgrnam("nogroup") {
            chown(directory + "/tmp", nobody.pointee.pw_uid, group.pointee.gr_gid)
        }
    }

    /// The configuration: `scripts/cluster`'s, with one worker (enough for a test, and round robin
    /// then plainly alternates) and `daemon off` (the test owns the process).
    static func configuration(port: Int, upstreams: [Int], directory: String) -> String {
        let servers = upstreams.map { "        server 127.0.0.1:\($0) max_fails=1 fail_timeout=5s;" }
            .joined(separator: "\n")
        let user = geteuid() == 0 ? "user nobody nogroup;" : ""
        return """
            # Written by NginxBalancer (Tests/ReferenceServerTests/Support), after scripts/cluster.
            \(user)
            daemon off;
            worker_processes 1;
            worker_shutdown_timeout 5s;
            pid \(directory)/nginx.pid;
            error_log \(directory)/logs/error.log warn;

            events {
                worker_connections 4096;
            }

            http {
                log_format upstream '$remote_addr [$time_local] "$request_method $uri $server_protocol" $status '
                                    '$body_bytes_sent upstream=$upstream_addr upstream_status=$upstream_status '
                                    'time=$request_time';
                access_log \(directory)/logs/access.log upstream;

                client_body_temp_path \(directory)/tmp/body;
                proxy_temp_path \(directory)/tmp/proxy;
                fastcgi_temp_path \(directory)/tmp/fastcgi;
                uwsgi_temp_path \(directory)/tmp/uwsgi;
                scgi_temp_path \(directory)/tmp/scgi;

                server_tokens off;
                client_max_body_size 1g;

                # Round-robin; an instance that refuses or fails is skipped for 5 s (passive failover).
                upstream pyat {
                    zone pyat 64k;
            \(servers)
                    keepalive 64;
                    keepalive_timeout 30s;
                }

                # Without kept-alive connections: an instance upgrades only a connection's first request.
                upstream pyat_websocket {
                    zone pyat_websocket 64k;
            \(servers)
                }

                map $http_upgrade $connection_upgrade {
                    default upgrade;
                    ''      close;
                }

                server {
                    listen 127.0.0.1:\(port);

                    proxy_http_version 1.1;
                    proxy_set_header Host $http_host;
                    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                    proxy_set_header X-Forwarded-Proto $scheme;
                    proxy_set_header Connection "";
                    proxy_connect_timeout 2s;
                    proxy_read_timeout 60s;
                    # A request already sent goes to the next instance only if it is idempotent: no
                    # non_idempotent, so a POST or PATCH is never applied twice by nginx.
                    proxy_next_upstream error timeout http_502 http_503;
                    proxy_next_upstream_tries 3;
                    proxy_next_upstream_timeout 10s;

                    location / {
                        proxy_pass http://pyat;
                    }

                    location = /api/v1/ws {
                        proxy_pass http://pyat_websocket;
                        proxy_set_header Upgrade $http_upgrade;
                        proxy_set_header Connection $connection_upgrade;
                        proxy_read_timeout 1h;
                        proxy_send_timeout 1h;
                    }

                    location = /api/v1/events {
                        proxy_pass http://pyat;
                        proxy_buffering off;
                        proxy_cache off;
                        proxy_read_timeout 1h;
                        proxy_send_timeout 1h;
                    }
                }
            }

            """
    }

    // MARK: Sockets

    /// A loopback port nobody listens on now.
    static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw Failure(message: "socket() failed: errno \(errno)") }
        defer { close(socket) }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw Failure(message: "bind() failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        guard named == 0 else { throw Failure(message: "getsockname() failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something accepts TCP connections on the loopback port.
    static func accepts(port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return false }
        defer { close(socket) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    static func tail(_ path: String, lines: Int = 20) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}
