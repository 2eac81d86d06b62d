import Crypto
import Foundation

/// The keys for secrets the server keeps at rest, derived with HKDF-SHA256 from the data
/// directory's storage secret (``SecretFile/storage``).
///
/// - Sealing (AES-256-GCM): stored idempotent answers, which can carry a personal access token or a
///   webhook secret, and webhook secrets, which deliveries still need in the clear to sign.
/// - Request hashing (HMAC-SHA256): the hash an `Idempotency-Key` is bound to. A plain SHA-256 of a
///   body holding a password could be brute-forced from a copy of the database; a keyed one cannot.
///
/// Each sealed box is bound to where it lives (its context: the idempotency key and its caller, the
/// webhook id), so a box copied to another row does not open.
public struct StorageKeys: Sendable {
    /// The first byte of every sealed box: the format, so keys or algorithms can change later.
    static let formatVersion: UInt8 = 1

    private let sealing: SymmetricKey
    private let requestHashing: SymmetricKey
    private let check: SymmetricKey
    private let urlSigning: SymmetricKey

    /// Derives the keys from a storage secret (at least 32 random bytes).
    public init(secret: [UInt8]) {
        let material = SymmetricKey(data: secret)
        let salt = Array("pyat storage keys".utf8)
        func derive(_ purpose: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(
                inputKeyMaterial: material,
                salt: salt,
                info: Array(purpose.utf8),
                outputByteCount: 32
            )
        }
        sealing = derive("seal v1")
        requestHashing = derive("idempotency request hash v1")
        check = derive("key check v1")
        urlSigning = derive("attachment url signature v1")
    }

    /// The signature of an attachment URL: HMAC-SHA256 over the file and the expiry, hex, so the
    /// URL works without a bearer token until it expires and cannot be made for another file.
    func attachmentSignature(file: String, expires: Int64) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(file)\n\(expires)".utf8), using: urlSigning)
        return Hex.encode(mac)
    }

    /// `plaintext` encrypted and authenticated together with `context`.
    func seal(_ plaintext: some DataProtocol, context: String) throws -> Data {
        let box = try AES.GCM.seal(plaintext, using: sealing, authenticating: Data(context.utf8))
        guard let combined = box.combined else { throw StorageKeysError.malformedBox }
        var sealed = Data([Self.formatVersion])
        sealed.append(combined)
        return sealed
    }

    /// The plaintext of a box made by ``seal(_:context:)`` with the same context.
    /// - Throws: ``StorageKeysError`` when the box was sealed with another key, for another place,
    ///   or altered.
    func open(_ sealed: Data, context: String) throws -> Data {
        guard sealed.first == Self.formatVersion else { throw StorageKeysError.malformedBox }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed.dropFirst())
            return try AES.GCM.open(box, using: sealing, authenticating: Data(context.utf8))
        } catch {
            throw StorageKeysError.cannotOpen
        }
    }

    /// The stored form of a request's hash: hex HMAC-SHA256 over the SHA-256 `digest` of its
    /// canonical form. Keying the digest (rather than the request) lets a migration turn hashes
    /// stored as plain SHA-256 into these without the requests.
    func requestHash(digest: some DataProtocol) -> String {
        Hex.encode(HMAC<SHA256>.authenticationCode(for: digest, using: requestHashing))
    }

    /// A value that identifies these keys without revealing them: a database remembers the keys
    /// it was sealed with, so the server refuses to start with another storage secret rather than
    /// find out when a webhook cannot sign.
    var fingerprint: String {
        Hex.encode(HMAC<SHA256>.authenticationCode(for: Array("pyat storage key check".utf8), using: check))
    }

    /// Where an idempotent answer lives: its caller and key.
    static func idempotencyContext(principal: String, key: String) -> String {
        "idempotency answer\u{0}\(principal)\u{0}\(key)"
    }

    /// Where a webhook secret lives: its webhook.
    static func webhookSecretContext(id: String) -> String {
        "webhook secret\u{0}\(id)"
    }
}

/// A sealed value could not be opened.
enum StorageKeysError: Error, CustomStringConvertible {
    /// Not a box this server makes.
    case malformedBox
    /// Sealed with another storage secret, for another place, or altered.
    case cannotOpen

    var description: String {
        switch self {
        case .malformedBox: "the stored value is not in a sealed format this server knows"
        case .cannotOpen: "the stored value was sealed with another storage secret, or altered"
        }
    }
}
