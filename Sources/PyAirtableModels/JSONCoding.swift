import Foundation

/// The JSON encoder and decoder of the wire contract: ISO-8601 UTC timestamps with milliseconds.
///
/// Keys are written snake_case by each type's own `CodingKeys`, never by a key strategy: a key
/// strategy would also rewrite the keys of record `fields`, which are user-chosen field names.
public enum JSONCoding {
    /// An encoder for the wire format: sorted keys, timestamps with milliseconds.
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        // Sorted keys make equal values encode to equal bytes: stable ETags, hashes and cache entries.
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return encoder
    }

    /// A decoder for the wire format; it accepts timestamps with or without fractional seconds.
    public static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let string = try container.decode(String.self)
            guard let date = Timestamp.parse(string) else {
                throw DecodingError.dataCorruptedError(
                    in: container,
                    debugDescription: "'\(string)' is not an ISO-8601 timestamp"
                )
            }
            return date
        }
        return decoder
    }
}

/// Formats and parses the contract's timestamps: `2026-11-21T18:26:00.123Z`.
public enum Timestamp {
    private static let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
    private static let withoutFraction = Date.ISO8601FormatStyle(timeZone: .gmt)

    /// `date` as an ISO-8601 UTC string with milliseconds.
    public static func format(_ date: Date) -> String {
        withFraction.format(date)
    }

    /// Parses an ISO-8601 timestamp with or without fractional seconds.
    public static func parse(_ string: String) -> Date? {
        if let date = try? withFraction.parse(string) { return date }
        return try? withoutFraction.parse(string)
    }
}
