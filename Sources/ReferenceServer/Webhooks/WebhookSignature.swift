import Crypto
import Foundation

/// The signature of a delivery: `sha256=<hex HMAC-SHA256(key: the secret's UTF-8 bytes, the raw body)>`.
enum WebhookSignature {
    /// The value of `X-PyAirtable-Signature` for `body`.
    static func header(body: some DataProtocol, secret: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256=" + Hex.encode(code)
    }

    /// A new secret: 32 random bytes as 64 hex characters.
    static func makeSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return Hex.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }
}
