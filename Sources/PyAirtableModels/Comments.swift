import Foundation

/// A comment on a record. Mentions are written in the text as `@[usr…]`; ``mentions`` lists the
/// users named, each a member of the record's workspace.
public struct Comment: Codable, Sendable, Hashable, Identifiable {
    public var id: CommentID
    public var recordID: RecordID
    public var tableID: TableID
    public var author: CommentAuthor
    public var text: String
    public var mentions: [CommentAuthor]
    public var createdAt: Date
    /// When the text was last edited; `nil` when never.
    public var updatedAt: Date?

    public init(
        id: CommentID,
        recordID: RecordID,
        tableID: TableID,
        author: CommentAuthor,
        text: String,
        mentions: [CommentAuthor] = [],
        createdAt: Date,
        updatedAt: Date? = nil
    ) {
        self.id = id
        self.recordID = recordID
        self.tableID = tableID
        self.author = author
        self.text = text
        self.mentions = mentions
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id
        case recordID = "record_id"
        case tableID = "table_id"
        case author, text, mentions
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    /// The user ids a text mentions (`@[usr…]`), in order, each once.
    public static func mentionedUsers(in text: String) -> [UserID] {
        var found: [UserID] = []
        var rest = text[...]
        while let start = rest.range(of: "@[usr") {
            let after = rest[start.upperBound...]
            guard let end = after.firstIndex(of: "]") else { break }
            let candidate = "usr" + after[..<end]
            if let id = UserID(candidate), !found.contains(id) { found.append(id) }
            rest = after[end...]
        }
        return found
    }
}

/// Who wrote, or is mentioned in, a comment.
public struct CommentAuthor: Codable, Sendable, Hashable {
    public var id: UserID
    public var email: String
    public var name: String

    public init(id: UserID, email: String, name: String) {
        self.id = id
        self.email = email
        self.name = name
    }
}

/// `POST /records/{id}/comments` and `PATCH /comments/{id}`.
public struct CommentRequest: Codable, Sendable, Hashable {
    public var text: String

    public init(text: String) { self.text = text }
}
