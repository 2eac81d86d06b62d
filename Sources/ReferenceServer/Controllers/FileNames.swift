import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOPosix
import PyAirtableModels

/// File names and types as metadata: cleaned and bounded, never used as paths.
enum FileNames {
    static let maximumLength = 255
    static let defaultName = "file"

    /// The name to store: control characters become `_`, surrounding blanks go, and an absent or
    /// blank name is `file`. Slashes and dots stay: the name is shown, not opened.
    static func stored(_ given: String?) throws -> String {
        let cleaned = String(
            String.UnicodeScalarView(
                (given ?? "").trimmingCharacters(in: .whitespacesAndNewlines).unicodeScalars.map {
                    $0.properties.generalCategory == .control ? "_" : $0
                }
            )
        )
        guard !cleaned.isEmpty else { return defaultName }
        guard cleaned.count <= maximumLength else {
            throw ServerError.validation("name must be at most \(maximumLength) characters", field: "name")
        }
        return cleaned
    }

    /// The `Content-Type` to store; `application/octet-stream` when none was sent.
    static func contentType(_ given: String?) throws -> String {
        guard let given = given?.trimmingCharacters(in: .whitespaces), !given.isEmpty else {
            return "application/octet-stream"
        }
        let essence = given.split(separator: ";", maxSplits: 1).first.map(String.init) ?? given
        let parts = essence.trimmingCharacters(in: .whitespaces).split(separator: "/", omittingEmptySubsequences: false)
        let token = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        guard given.count <= 255, given.allSatisfy({ $0.isASCII && !$0.isNewline && $0 != "\0" }), parts.count == 2,
            parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(token.contains) })
        else {
            throw ServerError.validation("Content-Type must be a media type such as text/plain", field: "content_type")
        }
        return given
    }

    /// The filename of a `Content-Disposition` header (`filename*=UTF-8''…` preferred).
    static func dispositionFilename(_ header: String) -> String? {
        var plain: String?
        for parameter in header.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { continue }
            switch pair[0].lowercased() {
            case "filename*":
                let value = pair[1]
                if value.lowercased().hasPrefix("utf-8''"), let decoded = value.dropFirst(7).removingPercentEncoding {
                    return decoded
                }
            case "filename":
                var value = pair[1]
                if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 {
                    value = String(value.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
                }
                plain = value
            default:
                continue
            }
        }
        return plain
    }

    /// `attachment` with an ASCII `filename` (unsafe characters as `_`) and the exact name as
    /// `filename*` (RFC 6266).
    static func contentDisposition(_ name: String) -> String {
        let ascii = String(
            name.unicodeScalars.map { scalar -> Character in
                let safe =
                    scalar.isASCII && scalar.value >= 0x20 && scalar.value != 0x7F
                    && !"\"\\/;%".unicodeScalars.contains(scalar)
                return safe ? Character(scalar) : "_"
            }
        )
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        let encoded = name.addingPercentEncoding(withAllowedCharacters: allowed) ?? ascii
        return "attachment; filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
    }
}
