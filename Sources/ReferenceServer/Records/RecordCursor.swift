import Foundation
import GRDB

/// The opaque `cursor` of a records page: the sort-key values and sequence number of the last row
/// returned (keyset pagination, so rows inserted meanwhile neither repeat nor shift the page), bound
/// to a hash of the query it belongs to.
struct RecordCursor: Codable, Sendable, Equatable {
    /// One sort-key value with its SQLite storage class, so comparisons resume exactly.
    enum Value: Codable, Sendable, Equatable {
        case null
        case integer(Int64)
        case real(Double)
        case text(String)

        init(_ value: DatabaseValue) {
            switch value.storage {
            case .null: self = .null
            case .int64(let int): self = .integer(int)
            case .double(let double): self = .real(double)
            case .string(let string): self = .text(string)
            case .blob(let data): self = .text(String(decoding: data, as: UTF8.self))
            }
        }

        var databaseValue: DatabaseValue {
            switch self {
            case .null: .null
            case .integer(let int): int.databaseValue
            case .real(let double): double.databaseValue
            case .text(let string): string.databaseValue
            }
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
                return
            }
            let tagged = try container.decode([String: String].self)
            if let int = tagged["i"].flatMap(Int64.init) {
                self = .integer(int)
            } else if let double = tagged["r"].flatMap(Double.init) {
                self = .real(double)
            } else if let text = tagged["t"] {
                self = .text(text)
            } else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "bad cursor value")
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .null: try container.encodeNil()
            case .integer(let int): try container.encode(["i": String(int)])
            case .real(let double): try container.encode(["r": String(double)])
            case .text(let text): try container.encode(["t": text])
            }
        }
    }

    var keys: [Value]
    var seq: Int64
    var queryHash: String

    enum CodingKeys: String, CodingKey {
        case keys = "k"
        case seq = "s"
        case queryHash = "q"
    }

    /// The cursor as URL-safe base64 of its JSON.
    func encoded() -> String {
        let data = (try? JSONEncoder().encode(self)) ?? Data()
        return data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Decodes a cursor, or throws a validation error naming the problem.
    static func decode(_ string: String, queryHash: String) throws -> RecordCursor {
        var base64 = string.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64),
            let cursor = try? JSONDecoder().decode(RecordCursor.self, from: data)
        else {
            throw StorageError.invalid("the cursor is malformed", field: "cursor")
        }
        guard cursor.queryHash == queryHash else {
            throw StorageError.invalid(
                "the cursor belongs to a different query (view, filter or sort changed)",
                field: "cursor"
            )
        }
        return cursor
    }
}
