import Foundation
import HTTPTypes
import Hummingbird
import PyAirtableModels

/// Attachment URLs as Airtable gives them: they work without a bearer token, for anyone holding the
/// URL, until they expire. `…/v0/attachments/{file}/{filename}?expires={unix seconds}&signature={hmac}`,
/// signed with a key derived from the data directory's storage secret (``StorageKeys``), so a URL
/// cannot be made for another file or a later expiry. URLs expire on the hour after
/// ``AirtableConfiguration/attachmentURLLifetime``, so answers within one hour share them.
struct AttachmentURLs: Sendable {
    let origin: String
    let keys: StorageKeys
    let expires: Int64

    init(origin: String, keys: StorageKeys, now: Date, lifetime: TimeInterval) {
        self.origin = origin
        self.keys = keys
        let hour: Int64 = 3600
        let current = Int64(now.timeIntervalSince1970.rounded(.down))
        expires = (current / hour + 1) * hour + Int64(max(0, lifetime).rounded(.up))
    }

    /// The origin attachment URLs start with: ``AirtableConfiguration/publicURL`` when set, else
    /// `http://` and the request's `Host`.
    static func origin(for request: Request, configuration: AirtableConfiguration) -> String {
        if let configured = configuration.publicURL, !configured.isEmpty {
            return configured.hasSuffix("/") ? String(configured.dropLast()) : configured
        }
        // Only a host and port: anything else the client sent is not put in a URL.
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]".utf8)
        guard let authority = request.head.authority, !authority.isEmpty, authority.utf8.count <= 255,
            authority.utf8.allSatisfy(allowed.contains)
        else { return "http://127.0.0.1" }
        return "http://\(authority)"
    }

    func url(file: String, filename: String) -> String {
        let name = filename.addingPercentEncoding(withAllowedCharacters: Self.pathCharacters) ?? "file"
        let signature = keys.attachmentSignature(file: file, expires: expires)
        return
            "\(origin)/v0/attachments/\(file)/\(name.isEmpty ? "file" : name)?expires=\(expires)&signature=\(signature)"
    }

    private static let pathCharacters: CharacterSet = {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return allowed
    }()

    /// Attachment objects as Airtable names them: `content_type` is `type`, and `url` the signed URL.
    func airtable(_ value: JSONValue) -> JSONValue {
        guard case .array(let items) = value else { return value }
        return .array(
            items.map { item in
                guard case .object(var object) = item else { return item }
                if let type = object.removeValue(forKey: "content_type") { object["type"] = type }
                if case .string(let id)? = object["id"] {
                    let name: String
                    if case .string(let given)? = object["filename"] { name = given } else { name = "file" }
                    object["url"] = .string(url(file: id, filename: name))
                }
                return .object(object)
            }
        )
    }
}

/// `GET /v0/attachments/{file}/{filename}`: a signed attachment URL's bytes, without a bearer token.
/// A bad signature is 403; an expired URL 410 (ask for the record again for a fresh one).
struct AirtableAttachmentsController {
    let services: ServerServices

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("attachments/{id}/{name}", use: content)
    }

    @Sendable func content(_ request: Request, context: AppRequestContext) async throws -> Response {
        let refused = AirtableErrors.error(.forbidden, "INVALID_PERMISSIONS", "the attachment URL is not valid")
        let query = request.uri.queryParameters
        guard let raw = context.parameters.get("id"), let id = FileID(raw),
            let expires = query.get("expires").flatMap(Int64.init),
            let signature = query.get("signature")
        else { throw refused }
        let expected = services.keys.attachmentSignature(file: id.rawValue, expires: expires)
        guard Self.constantTimeEqual(Array(expected.utf8), Array(signature.utf8)) else { throw refused }
        guard Double(expires) >= services.configuration.now().timeIntervalSince1970 else {
            throw AirtableErrors.error(.gone, "ATTACHMENT_URL_EXPIRED", "the attachment URL has expired")
        }
        let file: FileMetadata
        do {
            file = try await services.store.fileForSignedURL(id: id)
        } catch let error as StorageError where error.isNotFoundOrForbidden {
            throw AirtableErrors.error(.notFound, "NOT_FOUND", "the attachment no longer exists")
        }
        return try await FilesController.content(
            of: file,
            request: request,
            context: context,
            blobs: services.blobs,
            cacheControl: "private, max-age=3600"
        )
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
