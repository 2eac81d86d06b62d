import Foundation
import HTTPTypes
import NIOCore

/// The address a request comes from, as per-client limits count it: an IPv4 address, or the /64
/// prefix of an IPv6 address (one subscriber commonly holds a whole /64, so counting single IPv6
/// addresses would let one client count as billions).
struct ClientAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or the first 8 bytes of an IPv6 address.
    let bytes: [UInt8]

    /// The client of a connection from `address`; `nil` for a Unix socket.
    init?(_ address: SocketAddress?) {
        guard let address, let exact = Self.exactBytes(address) else { return nil }
        bytes = exact.count == 16 ? Array(exact.prefix(8)) : exact
    }

    var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: bytes.count, by: 2).map {
            String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
        }
        .joined(separator: ":") + "::/64"
    }

    /// The address bytes of `address`: 4 for IPv4 (IPv4-mapped IPv6 included), 16 for IPv6.
    static func exactBytes(_ address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            let mappedPrefix: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]
            if bytes.prefix(12).elementsEqual(mappedPrefix) { return Array(bytes.suffix(4)) }
            return bytes
        case .unixDomainSocket:
            return nil
        }
    }

    /// The address bytes of a textual IP address, or `nil` when it is not one.
    static func exactBytes(_ text: some StringProtocol) -> [UInt8]? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 64,
            let address = try? SocketAddress(ipAddress: trimmed, port: 0)
        else { return nil }
        return exactBytes(address)
    }
}

/// The proxies whose `X-Forwarded-For` is believed (see ``ServerConfiguration/trustedProxies``).
struct TrustedProxies: Sendable {
    private let addresses: Set<[UInt8]>

    /// - Throws: ``ServerConfigurationError`` for an entry that is not an IP address.
    init(_ entries: [String]) throws {
        var addresses = Set<[UInt8]>()
        for entry in entries {
            guard let bytes = ClientAddress.exactBytes(entry) else {
                throw ServerConfigurationError(message: "trusted proxy '\(entry)' is not an IP address")
            }
            addresses.insert(bytes)
        }
        self.addresses = addresses
    }

    var isEmpty: Bool { addresses.isEmpty }

    /// The client of a request that arrived from `peer`: `peer` itself unless it is a trusted
    /// proxy, else the right-most `X-Forwarded-For` entry that is not a trusted proxy (entries left
    /// of it were written by the client and prove nothing).
    func client(peer: SocketAddress?, forwardedFor: String?) -> ClientAddress? {
        guard let peer, let peerBytes = ClientAddress.exactBytes(peer) else { return ClientAddress(peer) }
        guard addresses.contains(peerBytes), let forwardedFor else { return ClientAddress(peer) }
        var client = peerBytes
        for entry in forwardedFor.split(separator: ",").reversed().prefix(32) {
            guard let bytes = ClientAddress.exactBytes(entry) else { break }
            client = bytes
            if !addresses.contains(bytes) { break }
        }
        return ClientAddress(exact: client)
    }
}

extension ClientAddress {
    fileprivate init(exact: [UInt8]) {
        bytes = exact.count == 16 ? Array(exact.prefix(8)) : exact
    }
}

extension HTTPField.Name {
    /// `X-Forwarded-For`, as a proxy in front of the server writes it.
    static let forwardedFor: HTTPField.Name = {
        guard let name = HTTPField.Name("X-Forwarded-For") else {
            preconditionFailure("X-Forwarded-For is a field name")
        }
        return name
    }()
}
