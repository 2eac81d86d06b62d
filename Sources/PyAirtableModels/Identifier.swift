/// The kind of resource an ``Identifier`` names; it fixes the id's three-letter prefix.
public protocol IdentifierKind: Sendable {
    /// The three-letter prefix every id of this kind starts with, such as `rec`.
    static var prefix: String { get }
}

/// A typed resource id: a three-letter prefix and 14 base-62 characters, such as `recA1b2C3d4E5f6G7`.
///
/// The type parameter makes a record id and a table id different types, so one cannot be passed for
/// the other; decoding validates the prefix and the shape.
///
/// ```swift
/// let id = try RecordID(validating: "rec0123456789abcd")
/// ```
public struct Identifier<Kind: IdentifierKind>: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The id as it travels on the wire.
    public let rawValue: String

    /// The number of base-62 characters after the prefix.
    public static var bodyLength: Int { 14 }

    /// Validates `string` as an id of this kind.
    /// - Throws: ``IdentifierError`` when the prefix or the shape is wrong.
    public init(validating string: String) throws(IdentifierError) {
        guard Self.isValid(string) else {
            throw IdentifierError(value: string, expectedPrefix: Kind.prefix)
        }
        self.rawValue = string
    }

    /// Validates `string`, returning `nil` when it is not an id of this kind.
    public init?(_ string: String) {
        guard Self.isValid(string) else { return nil }
        self.rawValue = string
    }

    /// Makes a new random id of this kind.
    public static func generate() -> Self {
        var generator = SystemRandomNumberGenerator()
        return generate(using: &generator)
    }

    /// Makes a new random id of this kind from `generator`.
    public static func generate(using generator: inout some RandomNumberGenerator) -> Self {
        var body = Kind.prefix
        body.reserveCapacity(3 + bodyLength)
        for _ in 0..<bodyLength {
            let index = Int.random(in: 0..<base62.count, using: &generator)
            body.unicodeScalars.append(base62[index])
        }
        return Self(unchecked: body)
    }

    /// Wraps `unchecked` without validating it: for ids read back from a trusted store.
    public init(unchecked: String) {
        self.rawValue = unchecked
    }

    /// Whether `string` has this kind's prefix followed by exactly 14 base-62 characters.
    public static func isValid(_ string: String) -> Bool {
        let utf8 = string.utf8
        guard utf8.count == 3 + bodyLength, string.hasPrefix(Kind.prefix) else { return false }
        return utf8.dropFirst(3).allSatisfy { byte in
            (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
        }
    }

    public var description: String { rawValue }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

private let base62: [Unicode.Scalar] = Array(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".unicodeScalars
)

extension Identifier: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        guard Self.isValid(string) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: IdentifierError(value: string, expectedPrefix: Kind.prefix).description
            )
        }
        self.rawValue = string
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension Identifier: LosslessStringConvertible {}

/// A string that is not a valid id of the expected kind.
public struct IdentifierError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The string that was rejected.
    public var value: String
    /// The prefix an id of the expected kind starts with.
    public var expectedPrefix: String

    public var description: String {
        "'\(value)' is not a valid id: expected '\(expectedPrefix)' followed by 14 letters or digits"
    }
}

public enum UserKind: IdentifierKind { public static var prefix: String { "usr" } }
public enum WorkspaceKind: IdentifierKind { public static var prefix: String { "wsp" } }
public enum BaseKind: IdentifierKind { public static var prefix: String { "app" } }
public enum TableKind: IdentifierKind { public static var prefix: String { "tbl" } }
public enum FieldKind: IdentifierKind { public static var prefix: String { "fld" } }
public enum ViewKind: IdentifierKind { public static var prefix: String { "viw" } }
public enum RecordKind: IdentifierKind { public static var prefix: String { "rec" } }
public enum FileKind: IdentifierKind { public static var prefix: String { "fil" } }
public enum WebhookKind: IdentifierKind { public static var prefix: String { "whk" } }
/// Personal access tokens are listed and revoked by this id; the secret itself starts with `pat_`.
public enum AccessTokenKind: IdentifierKind { public static var prefix: String { "tok" } }
/// A comment on a record.
public enum CommentKind: IdentifierKind { public static var prefix: String { "com" } }
/// A webhook delivery attempt log entry.
public enum DeliveryKind: IdentifierKind { public static var prefix: String { "dlv" } }

public typealias UserID = Identifier<UserKind>
public typealias WorkspaceID = Identifier<WorkspaceKind>
public typealias BaseID = Identifier<BaseKind>
public typealias TableID = Identifier<TableKind>
public typealias FieldID = Identifier<FieldKind>
public typealias ViewID = Identifier<ViewKind>
public typealias RecordID = Identifier<RecordKind>
public typealias CommentID = Identifier<CommentKind>
public typealias FileID = Identifier<FileKind>
public typealias WebhookID = Identifier<WebhookKind>
public typealias AccessTokenID = Identifier<AccessTokenKind>
public typealias DeliveryID = Identifier<DeliveryKind>
