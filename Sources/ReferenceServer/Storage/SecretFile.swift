import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A random secret kept in the data directory with mode 0600, generated on first start.
struct SecretFile: Sendable {
    /// The file's name in the data directory.
    var name: String
    /// What the secret is for, in log lines and errors.
    var purpose: String
    /// Whether a file too short to be a secret may be replaced by a new one. Replacing the signing
    /// secret signs everyone out; replacing the storage secret would make every sealed value
    /// unreadable, so that one is refused instead.
    var replaceableWhenShort: Bool

    /// The secret of access tokens (JWT, HMAC-SHA256), unless `PYAT_JWT_SECRET` is set.
    static let signing = SecretFile(name: "jwt-secret", purpose: "signing secret", replaceableWhenShort: true)
    /// The secret the keys of sealed values and request hashes derive from (``StorageKeys``). Kept
    /// apart from the signing secret so that rotating the latter (which signs everyone out) leaves
    /// webhook secrets and stored answers readable.
    static let storage = SecretFile(name: "storage-secret", purpose: "storage secret", replaceableWhenShort: false)

    /// The fewest bytes a secret may have.
    static let minimumLength = 32
    /// The bytes a generated secret has.
    static let generatedLength = 64

    /// Reads the secret in `directory`, creating it when missing; a file readable by others is
    /// restricted to 0600. `durable`: a new secret reaches the disk before anything is sealed or
    /// signed with it (as commits do with ``ServerConfiguration/durableCommits``).
    func loadOrCreate(directory: String, durable: Bool, logger: Logger) throws -> [UInt8] {
        let path = (directory as NSString).appendingPathComponent(name)
        if let data = FileManager.default.contents(atPath: path) {
            if data.count >= Self.minimumLength {
                if try PrivateFiles.prepareFile(atPath: path) {
                    logger.warning(
                        "the \(purpose) was readable by others; restricted it to 0600",
                        metadata: ["path": "\(path)"]
                    )
                }
                return Array(data)
            }
            guard replaceableWhenShort else {
                throw ServerConfigurationError(
                    message:
                        "\(path) holds \(data.count) bytes, fewer than the \(Self.minimumLength) of a \(purpose); "
                        + "restore the original file (values sealed with it cannot be read without it)"
                )
            }
            logger.warning("the \(purpose) is too short; generating a new one", metadata: ["path": "\(path)"])
            unlink(path)
        }
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<Self.generatedLength).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try PrivateFiles.createFile(atPath: path, contents: secret, durable: durable)
        logger.info("generated a new \(purpose)", metadata: ["path": "\(path)"])
        return secret
    }
}
