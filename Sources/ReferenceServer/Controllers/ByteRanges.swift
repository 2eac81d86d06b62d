import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOPosix
import PyAirtableModels

/// `Range: bytes=…` for one range, and `If-None-Match` against a strong ETag.
enum ByteRanges {
    enum Outcome: Equatable {
        /// Not a single byte range this server serves: answer the whole file (RFC 9110 allows it).
        case ignored
        case unsatisfiable
        case satisfiable(ClosedRange<Int64>)
    }

    static func parse(_ header: String, size: Int64) -> Outcome {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard trimmed.lowercased().hasPrefix("bytes=") else { return .ignored }
        let spec = trimmed.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .ignored }
        let first = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let last = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        func number(_ text: String) -> Int64? {
            guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
            return Int64(text)
        }
        if first.isEmpty {
            guard let suffix = number(last) else { return .ignored }
            guard suffix > 0, size > 0 else { return .unsatisfiable }
            return .satisfiable(max(0, size - suffix)...(size - 1))
        }
        guard let start = number(first) else { return .ignored }
        var end = size - 1
        if !last.isEmpty {
            guard let given = number(last), given >= start else { return .ignored }
            end = min(given, size - 1)
        }
        guard start < size else { return .unsatisfiable }
        return .satisfiable(start...end)
    }

    static func matches(_ condition: String, eTag: String) -> Bool {
        condition.split(separator: ",").contains { candidate in
            let tag = candidate.trimmingCharacters(in: .whitespaces)
            return tag == "*" || tag == eTag || tag == "W/" + eTag
        }
    }
}
