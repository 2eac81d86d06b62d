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
/// webhook cannot make the server call into its own network (server-side request forgery). IPv6
/// addresses that carry an IPv4 address (NAT64, 6to4, Teredo, IPv4-mapped and -compatible) are
/// judged by the IPv4 address they carry, and a name that does not resolve is refused.
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

    /// Refuses a host that is or resolves to a non-public address, or that does not resolve.
    /// - Returns: Why the target is refused, or `nil` when it may be called. A refusal names the
    ///   host as given, never an address it resolved to: the caller must not learn what a name
    ///   means inside the server's network.
    /// - Parameters:
    ///   - resolve: Whether to resolve a host name (a literal address is always checked).
    ///   - allowLoopback: Whether loopback addresses pass (`pyat serve --demo`).
    func refusal(resolve: Bool, allowLoopback: Bool = false) async -> String? {
        func refused(_ restriction: IPAddress.Restriction?) -> Bool {
            guard let restriction else { return false }
            return !(allowLoopback && restriction.allowsLoopbackException)
        }
        if host == "localhost" || host.hasSuffix(".localhost") {
            return allowLoopback ? nil : "\(host) is a loopback host"
        }
        if let address = IPAddress(literal: host) {
            guard let restriction = address.restriction, refused(restriction) else { return nil }
            return "\(host) \(restriction.explanation)"
        }
        guard resolve else { return nil }
        let host = self.host
        let resolved = try? await NIOThreadPool.singleton.runIfActive { IPAddress.resolve(host) }
        // A name that does not resolve here cannot be checked; it might resolve later, to anything.
        guard let addresses = resolved, !addresses.isEmpty else {
            return "\(host) could not be resolved"
        }
        if addresses.contains(where: { refused($0.restriction) }) {
            return "\(host) resolves to a private address"
        }
        return nil
    }
}

extension WebhookTarget {
    /// The check of ``refusal(resolve:allowLoopback:)``, answering also the address the check passed,
    /// to connect to that very address (`HTTPClient.Configuration.dnsOverride`) instead of resolving
    /// the name again: a resolver that answers a public address to the check and a private one to the
    /// connection (DNS rebinding) is then no way in. `address` is `nil` when the host is an address
    /// already, or `localhost` under `allowLoopback`.
    func pinnedAddress(allowLoopback: Bool) async -> (address: String?, refusal: String?) {
        if host == "localhost" || host.hasSuffix(".localhost") || IPAddress(literal: host) != nil {
            return (nil, await refusal(resolve: false, allowLoopback: allowLoopback))
        }
        let host = self.host
        let resolved = try? await NIOThreadPool.singleton.runIfActive { IPAddress.resolve(host) }
        guard let addresses = resolved, let first = addresses.first else {
            return (nil, "\(host) could not be resolved")
        }
        if addresses.contains(where: { address in
            guard let restriction = address.restriction else { return false }
            return !(allowLoopback && restriction.allowsLoopbackException)
        }) {
            return (nil, "\(host) resolves to a private address")
        }
        return (first.description, nil)
    }
}

/// An IPv4 or IPv6 address, classified for the webhook target check.
enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4([UInt8])
    case v6([UInt8])

    /// Why an address is not public.
    struct Restriction: Sendable, Hashable {
        /// `loopback`, `private`, `link-local`, `unspecified`, …
        var kind: String
        /// How an IPv6 address carries the IPv4 address `kind` describes (`NAT64`, `6to4`, `Teredo`,
        /// `IPv4-mapped`, …); `nil` when the address itself is of that kind.
        var embedding: String?

        static let loopback = "loopback"

        /// Whether `allowLoopbackTargets` lets it pass: loopback itself, or as an IPv4-mapped or
        /// -compatible address (the same socket on this host). Loopback behind a translator (NAT64,
        /// 6to4, Teredo) is the translator's loopback, never this host's.
        var allowsLoopbackException: Bool {
            kind == Self.loopback && (embedding == nil || IPAddress.hostEmbeddings.contains(embedding ?? ""))
        }

        /// The refusal's wording after the host, e.g. `is a loopback address` or `embeds a private
        /// IPv4 address (NAT64)`.
        var explanation: String {
            guard let embedding else { return "is a \(kind) address" }
            return "embeds a \(kind) IPv4 address (\(embedding))"
        }
    }

    /// Embeddings that mean the IPv4 address on this host's own stack, not through a translator.
    static let hostEmbeddings: Set<String> = ["IPv4-mapped", "IPv4-compatible", "IPv4-translated"]

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

    /// What kind of non-public address this is, or `nil` for a public one. An IPv6 address that
    /// carries an IPv4 address (IPv4-mapped, -compatible or -translated, NAT64, 6to4, Teredo) is
    /// judged by the IPv4 address it carries, since that is where its packets end up.
    var restriction: Restriction? {
        switch self {
        case .v4(let b):
            return Self.kind(ofV4: b).map { Restriction(kind: $0) }
        case .v6(let b):
            if b.allSatisfy({ $0 == 0 }) { return Restriction(kind: "unspecified") }
            if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return Restriction(kind: Restriction.loopback) }
            for (embedding, v4) in Self.embeddedV4(b) {
                if let kind = Self.kind(ofV4: v4) { return Restriction(kind: kind, embedding: embedding) }
            }
            if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B {
                // The rest of 64:ff9b::/32 is no public unicast space (RFC 6052, RFC 8215).
                let isWellKnown = b[4..<12].allSatisfy { $0 == 0 }
                let isLocalUse = b[4] == 0 && b[5] == 1
                if !isWellKnown && !isLocalUse { return Restriction(kind: "reserved (NAT64 prefix)") }
            }
            if b[0] & 0xFE == 0xFC { return Restriction(kind: "private (unique local)") }
            if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return Restriction(kind: "link-local") }
            if b[0] == 0xFE && b[1] & 0xC0 == 0xC0 { return Restriction(kind: "private (site-local)") }
            if b[0] == 0xFF { return Restriction(kind: "multicast") }
            if b[0] == 0x01 && b[1] == 0x00 && b[2..<8].allSatisfy({ $0 == 0 }) {
                return Restriction(kind: "reserved (discard-only)")
            }
            if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0D && b[3] == 0xB8 {
                return Restriction(kind: "reserved (documentation)")
            }
            return nil
        }
    }

    /// What kind of non-public IPv4 address `b` is, or `nil` for a public one.
    private static func kind(ofV4 b: [UInt8]) -> String? {
        if b[0] == 0 { return "unspecified" }
        if b[0] == 127 { return Restriction.loopback }
        if b[0] == 10 || (b[0] == 172 && (16...31).contains(b[1])) || (b[0] == 192 && b[1] == 168) {
            return "private"
        }
        if b[0] == 100 && (64...127).contains(b[1]) { return "private (shared address space)" }
        if b[0] == 169 && b[1] == 254 { return "link-local" }
        if b[0] == 192 && b[1] == 0 && b[2] == 0 { return "reserved (IETF protocol assignments)" }
        if b[0] == 198 && (b[1] == 18 || b[1] == 19) { return "reserved (benchmarking)" }
        if (b[0] == 192 && b[1] == 0 && b[2] == 2) || (b[0] == 198 && b[1] == 51 && b[2] == 100)
            || (b[0] == 203 && b[1] == 0 && b[2] == 113)
        {
            return "reserved (documentation)"
        }
        if b[0] == 192 && b[1] == 88 && b[2] == 99 { return "reserved (6to4 relay)" }
        if b[0] >= 224 { return "multicast or reserved" }
        return nil
    }

    /// The IPv4 addresses an IPv6 address carries, each with the name of the form carrying it.
    ///
    /// The local-use NAT64 prefix 64:ff9b:1::/48 may be deployed at any of the lengths RFC 6052
    /// allows within it (/48, /56, /64, /96), each placing the IPv4 address elsewhere; every placement
    /// whose suffix is zero, as RFC 6052 requires, is returned, so that no reading of the address
    /// reaches a private one.
    static func embeddedV4(_ b: [UInt8]) -> [(String, [UInt8])] {
        let zero: (Range<Int>) -> Bool = { range in b[range].allSatisfy { $0 == 0 } }
        let last4 = Array(b[12..<16])
        if zero(0..<10) && b[10] == 0xFF && b[11] == 0xFF { return [("IPv4-mapped", last4)] }
        if zero(0..<12) { return [("IPv4-compatible", last4)] }
        if zero(0..<8) && b[8] == 0xFF && b[9] == 0xFF && zero(10..<12) { return [("IPv4-translated", last4)] }
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B {
            if zero(4..<12) { return [("NAT64", last4)] }
            if b[4] == 0x00 && b[5] == 0x01 {
                // Shorter prefixes first: their suffix must be zero, so a /96 reading of the same
                // address (then mostly zeros) would name a less telling kind.
                var placements: [(String, [UInt8])] = []
                if zero(11..<16) { placements.append(("NAT64", [b[6], b[7], b[9], b[10]])) }
                if zero(12..<16) { placements.append(("NAT64", [b[7], b[9], b[10], b[11]])) }
                if zero(13..<16) { placements.append(("NAT64", Array(b[9..<13]))) }
                placements.append(("NAT64", last4))
                return placements
            }
            return []
        }
        if b[0] == 0x20 && b[1] == 0x02 { return [("6to4", Array(b[2..<6]))] }
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00 {
            // Teredo: the server's address, and the client's, stored inverted.
            return [("Teredo", Array(b[4..<8])), ("Teredo", last4.map { ~$0 })]
        }
        return []
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
