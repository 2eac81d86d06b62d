import Crypto
import Foundation
import PyAirtableModels

extension Webhook {
    /// Checks a delivery's `X-PyAirtable-Signature` header against its raw body, in constant time.
    ///
    /// ```swift
    /// guard Webhook.verifySignature(body: rawBody, signatureHeader: header, secret: secret) else {
    ///     return .unauthorized
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - body: The request body exactly as received (before any JSON decoding).
    ///   - signatureHeader: The header's value, `sha256=<hex>`.
    ///   - secret: The secret returned when the webhook was created.
    /// - Returns: Whether the body was signed with `secret`.
    public static func verifySignature(
        body: some DataProtocol,
        signatureHeader: String,
        secret: String
    ) -> Bool {
        let header = signatureHeader.trimmingCharacters(in: .whitespaces)
        guard header.hasPrefix("sha256="), let expected = hexBytes(header.dropFirst("sha256=".count)),
            expected.count == SHA256.byteCount
        else { return false }
        let key = SymmetricKey(data: Array(secret.utf8))
        // `isValidAuthenticationCode` compares in constant time.
        return HMAC<SHA256>.isValidAuthenticationCode(expected, authenticating: body, using: key)
    }

    /// The `X-PyAirtable-Signature` value for `body`, as the server computes it (for tests of receivers).
    public static func signature(body: some DataProtocol, secret: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256="
            + code.map { byte in
                let digits = Array("0123456789abcdef")
                return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
            }.joined()
    }

    private static func hexBytes(_ text: Substring) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
