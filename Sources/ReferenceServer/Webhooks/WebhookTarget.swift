import Foundation
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A webhook's target URL, checked: http or https, a host, and — unless private targets are allowed —
/// no host that is or resolves to a loopback, private, link-local or unspecified address, so a
/// webhook cannot make the server call into its own network (server-side request forgery).
///
/// The check runs when a webhook is registered and again before every attempt, since what a name
/// resolves to may change. The HTTP client resolves the name once more when it connects; a resolver
/// that answers differently within that window (DNS rebinding) is outside what this check covers.
struct WebhookTarget: Sendable {
    let url: URL
    let host: String

    /// Parses `string` and checks its form (not its addresses).
    /// - Throws: 422 naming what is wrong.
    init(_ string: String, maximumLength: Int) throws {
        guard string.utf8.count <= maximumLength else {
            throw ServerError.validation("url must be at most \(maximumLength) characters", field: "url")
        }
        guard let components = URLComponents(string: string), let url = components.url,
            let scheme = components.scheme?.lowercased()
        else {
            throw ServerError.validation("url is not a valid URL", field: "url")
        }
        guard scheme == "http" || scheme == "https" else {
            throw ServerError.validation(
                "url must use http or https (not \(scheme))",
                field: "url"
            )
        }
        var host = (components.host ?? "").lowercased()
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        // `localhost.` is `localhost`: a fully qualified name must not slip past the name check.
        while host.hasSuffix(".") { host.removeLast() }
        guard !host.isEmpty else {
            throw ServerError.validation("url must name a host", field: "url")
        }
        self.url = url
        self.host = host
    }

    /// Refuses a host that is or resolves to a non-public address.
    /// - Returns: Why the target is refused, or `nil` when it may be called.
    /// - Parameters:
    ///   - resolve: Whether to resolve a host name (a literal address is always checked).
    ///   - allowLoopback: Whether loopback addresses pass (`pyat serve --demo`).
    func refusal(resolve: Bool, allowLoopback: Bool = false) async -> String? {
        func refused(_ restriction: String?) -> Bool {
            guard let restriction else { return false }
            return !(allowLoopback && restriction == IPAddress.loopback)
        }
        if host == "localhost" || host.hasSuffix(".localhost") {
            return allowLoopback ? nil : "\(host) is a loopback host"
        }
        if let address = IPAddress(literal: host) {
            return refused(address.restriction) ? "\(host) is a \(address.restriction ?? "") address" : nil
        }
        guard resolve else { return nil }
        let host = self.host
        let addresses = (try? await NIOThreadPool.singleton.runIfActive { IPAddress.resolve(host) }) ?? []
        for address in addresses where refused(address.restriction) {
            return "\(host) resolves to \(address) (a \(address.restriction ?? "") address)"
        }
        return nil
    }
}

/// An IPv4 or IPv6 address, classified for the webhook target check.
enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4([UInt8])
    case v6([UInt8])

    static let loopback = "loopback"

    init?(literal: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 {
            self = .v4(withUnsafeBytes(of: &v4) { Array($0) })
            return
        }
        var v6 = in6_addr()
        // A zone index (`fe80::1%eth0`) is not part of the address.
        let bare = literal.split(separator: "%", maxSplits: 1).first.map(String.init) ?? literal
        if inet_pton(AF_INET6, bare, &v6) == 1 {
            self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
            return
        }
        return nil
    }

    /// The addresses `host` resolves to (empty when it does not resolve). Blocking: call off the
    /// cooperative pool.
    static func resolve(_ host: String) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Darwin)
        hints.ai_socktype = SOCK_STREAM
        #else
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [IPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if let address = info.pointee.ai_addr {
                switch info.pointee.ai_family {
                case AF_INET:
                    address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                        var value = pointer.pointee.sin_addr
                        addresses.append(.v4(withUnsafeBytes(of: &value) { Array($0) }))
                    }
                case AF_INET6:
                    address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                        var value = pointer.pointee.sin6_addr
                        addresses.append(.v6(withUnsafeBytes(of: &value) { Array($0) }))
                    }
                default:
                    break
                }
            }
            cursor = info.pointee.ai_next
        }
        return addresses
    }

    /// What kind of non-public address this is, or `nil` for a public one.
    var restriction: String? {
        switch self {
        case .v4(let b):
            if b.allSatisfy({ $0 == 0 }) { return "unspecified" }
            if b[0] == 0 { return "unspecified" }
            if b[0] == 127 { return "loopback" }
            if b[0] == 10 || (b[0] == 172 && (16...31).contains(b[1])) || (b[0] == 192 && b[1] == 168) {
                return "private"
            }
            if b[0] == 100 && (64...127).contains(b[1]) { return "private (shared address space)" }
            if b[0] == 169 && b[1] == 254 { return "link-local" }
            if b[0] >= 224 { return "multicast or reserved" }
            return nil
        case .v6(let b):
            if b.allSatisfy({ $0 == 0 }) { return "unspecified" }
            if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return "loopback" }
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses are the IPv4 address.
            if b[0..<10].allSatisfy({ $0 == 0 }) && ((b[10] == 0xFF && b[11] == 0xFF) || (b[10] == 0 && b[11] == 0)) {
                return IPAddress.v4(Array(b[12..<16])).restriction
            }
            if b[0] & 0xFE == 0xFC { return "private (unique local)" }
            if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "link-local" }
            if b[0] == 0xFF { return "multicast" }
            return nil
        }
    }

    var description: String {
        switch self {
        case .v4(let b): return b.map(String.init).joined(separator: ".")
        case .v6(let b):
            return stride(from: 0, to: 16, by: 2).map { String(UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]), radix: 16) }
                .joined(separator: ":")
        }
    }
}
