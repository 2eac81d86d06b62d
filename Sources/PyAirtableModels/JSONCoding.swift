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
    ///
    /// Written by hand from the civil date: it runs for every timestamp of every response, and the
    /// general-purpose format styles cost several times more.
    public static func format(_ date: Date) -> String {
        // Nearest, not floor: a millisecond count read back as a Double may sit a hair below itself.
        let totalMilliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var days = totalMilliseconds / 86_400_000
        var milliseconds = totalMilliseconds % 86_400_000
        if milliseconds < 0 {
            milliseconds += 86_400_000
            days -= 1
        }
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        let seconds = milliseconds / 1000
        var utf8: [UInt8] = []
        utf8.reserveCapacity(24)
        func append(_ value: Int64, width: Int) {
            var digits = [UInt8](repeating: 48, count: width)
            var remaining = value
            for index in stride(from: width - 1, through: 0, by: -1) {
                digits[index] = UInt8(48 + remaining % 10)
                remaining /= 10
            }
            utf8.append(contentsOf: digits)
        }
        append(year, width: 4)
        utf8.append(45)
        append(month, width: 2)
        utf8.append(45)
        append(day, width: 2)
        utf8.append(84)
        append(seconds / 3600, width: 2)
        utf8.append(58)
        append(seconds / 60 % 60, width: 2)
        utf8.append(58)
        append(seconds % 60, width: 2)
        utf8.append(46)
        append(milliseconds % 1000, width: 3)
        utf8.append(90)
        return String(decoding: utf8, as: UTF8.self)
    }

    /// Parses an ISO-8601 timestamp with or without fractional seconds.
    public static func parse(_ string: String) -> Date? {
        if let date = try? withFraction.parse(string) { return date }
        return try? withoutFraction.parse(string)
    }

    /// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a day count since 1970-01-01.
    static func civilDate(daysSinceEpoch: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthPrime = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthPrime + 2) / 5 + 1
        let month = monthPrime < 10 ? monthPrime + 3 : monthPrime - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
