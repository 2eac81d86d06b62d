/// The id of a record created while offline, used until the server answers with the real one.
///
/// A temporary id is `tmp_` followed by 14 base-62 characters. Server ids are a three-letter prefix and
/// 14 base-62 characters, with no underscore, so the two can never collide, and a temporary id is found
/// unambiguously inside a path, a query or a JSON body.
///
/// ```swift
/// let id = TemporaryID.generate()          // tmp_4fX0aQ9zLm2BcD
/// try await queue.enqueue(create, scope: id.rawValue, creates: [id])
/// ```
public struct TemporaryID: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    /// The id as it appears in requests.
    public let rawValue: String

    /// What every temporary id starts with.
    public static let prefix = "tmp_"
    /// The number of base-62 characters after the prefix.
    public static let bodyLength = 14

    /// Validates `string`, returning `nil` when it is not a temporary id.
    public init?(_ string: String) {
        guard Self.isValid(string) else { return nil }
        self.rawValue = string
    }

    private init(unchecked: String) {
        self.rawValue = unchecked
    }

    /// Makes a new random temporary id.
    public static func generate() -> Self {
        var generator = SystemRandomNumberGenerator()
        return generate(using: &generator)
    }

    /// Makes a new random temporary id from `generator`.
    public static func generate(using generator: inout some RandomNumberGenerator) -> Self {
        var body = prefix
        for _ in 0..<bodyLength {
            body.unicodeScalars.append(Unicode.Scalar(base62[Int.random(in: 0..<base62.count, using: &generator)]))
        }
        return Self(unchecked: body)
    }

    /// Whether `string` is `tmp_` followed by exactly 14 base-62 characters.
    public static func isValid(_ string: String) -> Bool {
        let utf8 = Array(string.utf8)
        return utf8.count == prefixBytes.count + bodyLength && utf8.starts(with: prefixBytes)
            && utf8.dropFirst(prefixBytes.count).allSatisfy(isBase62)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        guard Self.isValid(string) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "'\(string)' is not a temporary id (tmp_ and 14 letters or digits)"
            )
        }
        self.rawValue = string
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

private let base62 = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
private let prefixBytes = Array(TemporaryID.prefix.utf8)

private func isBase62(_ byte: UInt8) -> Bool {
    (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
}

/// Whether `byte` may continue an identifier: a match next to one is part of a longer word, not an id.
private func isWordByte(_ byte: UInt8) -> Bool {
    isBase62(byte) || byte == UInt8(ascii: "_")
}

extension TemporaryID {
    /// Every temporary id that appears, as a whole word, in `bytes`.
    static func mentions(in bytes: some Collection<UInt8>) -> Set<TemporaryID> {
        let bytes = Array(bytes)
        let length = prefixBytes.count + bodyLength
        var found: Set<TemporaryID> = []
        var index = 0
        while index + length <= bytes.count {
            guard bytes[index] == prefixBytes[0], bytes[index..<(index + prefixBytes.count)].elementsEqual(prefixBytes)
            else {
                index += 1
                continue
            }
            let end = index + length
            let bodyIsValid = bytes[(index + prefixBytes.count)..<end].allSatisfy(isBase62)
            let startsWord = index == 0 || !isWordByte(bytes[index - 1])
            let endsWord = end == bytes.count || !isWordByte(bytes[end])
            if bodyIsValid && startsWord && endsWord {
                found.insert(TemporaryID(unchecked: String(decoding: bytes[index..<end], as: UTF8.self)))
                index = end
            } else {
                index += 1
            }
        }
        return found
    }

    /// Every temporary id that appears, as a whole word, in `string`.
    static func mentions(in string: String) -> Set<TemporaryID> {
        mentions(in: string.utf8)
    }

    /// `bytes` with every whole-word occurrence of this id replaced by `replacement`, or `nil` when
    /// there is none.
    ///
    /// Both ids are plain ASCII letters, digits and `_`, which JSON never escapes, so replacing bytes
    /// inside a JSON document keeps it valid and touches nothing else: not numbers, not key order.
    func replacingOccurrences(in bytes: [UInt8], with replacement: String) -> [UInt8]? {
        let needle = Array(rawValue.utf8)
        let substitute = Array(replacement.utf8)
        var result: [UInt8] = []
        var changed = false
        var index = 0
        var copiedUpTo = 0
        while index + needle.count <= bytes.count {
            let end = index + needle.count
            if bytes[index] == needle[0] && bytes[index..<end].elementsEqual(needle)
                && (index == 0 || !isWordByte(bytes[index - 1]))
                && (end == bytes.count || !isWordByte(bytes[end]))
            {
                if !changed {
                    result.reserveCapacity(bytes.count)
                    changed = true
                }
                result.append(contentsOf: bytes[copiedUpTo..<index])
                result.append(contentsOf: substitute)
                copiedUpTo = end
                index = end
            } else {
                index += 1
            }
        }
        guard changed else { return nil }
        result.append(contentsOf: bytes[copiedUpTo...])
        return result
    }

    /// `string` with every whole-word occurrence of this id replaced by `replacement`.
    func replacingOccurrences(in string: String, with replacement: String) -> String {
        guard let bytes = replacingOccurrences(in: Array(string.utf8), with: replacement) else { return string }
        return String(decoding: bytes, as: UTF8.self)
    }
}
