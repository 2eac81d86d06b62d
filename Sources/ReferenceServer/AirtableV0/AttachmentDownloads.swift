import AsyncHTTPClient
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import PyAirtableModels
import Synchronization

/// Attachments a v0 write names by URL (`[{"url": "https://…", "filename": "…"}]`), as Airtable
/// takes them: the server downloads each once, stores the bytes content-addressed beside uploaded
/// files (the same bytes are kept once), and the cell names the new file.
///
/// URLs get the webhook targets' check (``WebhookTarget``): http or https, and no loopback, private,
/// link-local or other non-public address, whatever the name resolves to, unless
/// ``AirtableConfiguration/allowLoopbackDownloads`` or ``AirtableConfiguration/allowPrivateDownloads``
/// say otherwise. Redirects are followed by hand (at most 5), each hop checked again. The bytes are
/// bounded by the largest file and the uploader's quota; the whole set of downloads of one write by
/// ``AirtableConfiguration/attachmentDownloadTimeout``. Any failure refuses the write with 422
/// `INVALID_ATTACHMENT_OBJECT`, naming the URL as given (never an address it resolved to), and
/// nothing is written.
struct AttachmentDownloads {
    let services: ServerServices
    let user: UserID
    let workspace: WorkspaceID
    let now: Date
    /// Files already downloaded for this write, by URL: the same URL twice is fetched once.
    private var fetched: [String: FileID] = [:]
    /// The files made so far, in order.
    private(set) var files: [FileID] = []
    private var remaining: Int
    /// When all of this write's downloads must be done (``AirtableConfiguration/attachmentDownloadTimeout``).
    private let deadline: ContinuousClock.Instant

    static let maximumRedirects = 5
    static let maximumURLLength = 2048

    init(services: ServerServices, user: UserID, workspace: WorkspaceID, now: Date) {
        self.services = services
        self.user = user
        self.workspace = workspace
        self.now = now
        remaining = services.configuration.airtable.maximumAttachmentDownloads
        deadline = .now + services.configuration.airtable.attachmentDownloadTimeout
    }

    private var configuration: AirtableConfiguration { services.configuration.airtable }

    static func refused(_ message: String) -> ServerError {
        AirtableErrors.error(.unprocessableContent, "INVALID_ATTACHMENT_OBJECT", message)
    }

    /// The cells of one record with every `{"url": …}` attachment replaced by `{"id": "att…"}`.
    mutating func resolve(_ fields: [String: JSONValue], schema: TableSchema) async throws -> [String: JSONValue] {
        var resolved = fields
        for (key, value) in fields {
            guard case .array(let items) = value,
                items.contains(where: { $0["url"] != nil && $0["id"] == nil }),
                let field = schema.fieldsByName[key] ?? schema.fieldsByID[key], field.type == .multipleAttachments
            else { continue }
            var replaced: [JSONValue] = []
            for item in items {
                guard case .string(let url)? = item["url"], item["id"] == nil else {
                    replaced.append(item)
                    continue
                }
                let filename: String?
                if case .string(let given)? = item["filename"] { filename = given } else { filename = nil }
                replaced.append(.object(["id": .string(try await download(url, filename: filename).rawValue)]))
            }
            resolved[key] = .array(replaced)
        }
        return resolved
    }

    /// Downloads `url` (or reuses this write's earlier download of it) into a new file.
    private mutating func download(_ url: String, filename: String?) async throws -> FileID {
        if let file = fetched[url] { return file }
        guard remaining > 0 else {
            throw Self.refused(
                "a write may name at most \(configuration.maximumAttachmentDownloads) attachments by URL "
                    + "(maximumAttachmentDownloads)"
            )
        }
        remaining -= 1
        let left = deadline - ContinuousClock.now
        let timeout = configuration.attachmentDownloadTimeout
        guard left > .zero else {
            throw Self.refused("the attachments of this write did not download within \(timeout)")
        }
        // Files the download made, even one finished as the time ran out, so the write can remove them.
        let made = FilesMade()
        let outcome: FileID?
        do {
            outcome = try await withThrowingTaskGroup(of: FileID?.self) { group in
                group.addTask { [self] in try await self.fetch(url, filename: filename, made: made) }
                group.addTask {
                    try await Task.sleep(for: left)
                    return nil
                }
                defer { group.cancelAll() }
                return try await group.next() ?? nil
            }
        } catch {
            files += made.all
            throw error
        }
        files += made.all.filter { $0 != outcome }
        guard let file = outcome else {
            throw Self.refused("the attachments of this write did not download within \(timeout)")
        }
        fetched[url] = file
        files.append(file)
        return file
    }

    private func fetch(_ given: String, filename: String?, made: FilesMade) async throws -> FileID {
        var target: WebhookTarget
        do {
            target = try WebhookTarget(given, maximumLength: Self.maximumURLLength)
        } catch let error as ServerError {
            throw Self.refused("attachment \(error.message)")
        }
        var hops = 0
        while true {
            // The name is resolved once, checked, and connected to at the address checked.
            var pinned: String?
            if !configuration.allowPrivateDownloads {
                let check = await target.pinnedAddress(allowLoopback: configuration.allowLoopbackDownloads)
                if let refusal = check.refusal {
                    throw Self.refused("the attachment at \(given) is refused: \(refusal)")
                }
                pinned = check.address
            }
            var httpConfiguration = HTTPClient.Configuration()
            httpConfiguration.redirectConfiguration = .disallow
            httpConfiguration.connectionPool.retryConnectionEstablishment = false
            if let pinned { httpConfiguration.dnsOverride = [target.host: pinned] }
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
            let next: Result<URL?, any Error>
            do {
                next = .success(try await hop(given, target: target, filename: filename, client: client, made: made))
            } catch {
                next = .failure(error)
            }
            try? await client.shutdown()
            guard let redirect = try next.get() else {
                guard let file = made.last else { throw ServerError(.internalServerError, .server, "no file was made") }
                return file
            }
            hops += 1
            guard hops <= Self.maximumRedirects else {
                throw Self.refused("the attachment at \(given) redirects too often")
            }
            do {
                target = try WebhookTarget(redirect.absoluteString, maximumLength: Self.maximumURLLength)
            } catch let error as ServerError {
                throw Self.refused("the attachment at \(given) redirects to a refused URL: \(error.message)")
            }
        }
    }

    /// One request: answers where it redirects to, or `nil` once the bytes are stored (in `made`).
    private func hop(
        _ given: String,
        target: WebhookTarget,
        filename: String?,
        client: HTTPClient,
        made: FilesMade
    ) async throws -> URL? {
        var request = HTTPClientRequest(url: target.url.absoluteString)
        request.headers.add(name: "User-Agent", value: "pyat attachment download")
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(3600))
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw Self.refused("the attachment at \(given) could not be downloaded (\(Self.describe(error)))")
        }
        if (300..<400).contains(Int(response.status.code)), let location = response.headers.first(name: "Location") {
            guard let next = URL(string: location, relativeTo: target.url)?.absoluteURL else {
                throw Self.refused("the attachment at \(given) redirects to an invalid URL")
            }
            return next
        }
        guard (200..<300).contains(Int(response.status.code)) else {
            throw Self.refused("the attachment at \(given) answered \(response.status.code)")
        }
        made.append(try await store(response, given: given, finalURL: target.url, filename: filename))
        return nil
    }

    private func store(
        _ response: HTTPClientResponse,
        given: String,
        finalURL: URL,
        filename: String?
    ) async throws
        -> FileID
    {
        var limit = services.configuration.maximumFileSize
        let quota = services.configuration.uploadQuotaBytes
        if quota > 0 {
            let used = try await services.store.uploadedBytes(user: user)
            limit = min(limit, max(0, quota - used))
        }
        if let length = response.headers.first(name: "Content-Length").flatMap(Int64.init), length > limit {
            throw Self.refused("the attachment at \(given) is larger than the \(limit) bytes this write may store")
        }
        let received: BlobStore.Received
        do {
            received = try await services.blobs.receive(response.body, limit: limit)
        } catch let error as ServerError where error.status == .contentTooLarge {
            throw Self.refused("the attachment at \(given) is larger than the \(limit) bytes this write may store")
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as ServerError {
            throw error
        } catch {
            throw Self.refused("the attachment at \(given) could not be downloaded (\(Self.describe(error)))")
        }
        let lastComponent = finalURL.lastPathComponent
        let name =
            (try? FileNames.stored(filename ?? (lastComponent.isEmpty || lastComponent == "/" ? nil : lastComponent)))
            ?? FileNames.defaultName
        let contentType =
            (try? FileNames.contentType(response.headers.first(name: "Content-Type"))) ?? "application/octet-stream"
        let new = NewFile(
            name: name,
            contentType: contentType,
            size: received.size,
            sha256: received.sha256,
            workspaceID: workspace
        )
        let write = WriteContext(actor: user, now: now)
        let store = services.store
        let result = try await services.blobs.store(received) {
            let result = try await store.createFile(new, context: write)
            return (result, result.value != nil)
        }
        guard let file = result.value else {
            throw ServerError(.internalServerError, .server, "the file was not stored")
        }
        return file.id
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "\(error)" }
        return "\(type(of: error))"
    }
}

/// The files one download made, recorded as they are made.
final class FilesMade: Sendable {
    private let files = Mutex<[FileID]>([])

    func append(_ file: FileID) { files.withLock { $0.append(file) } }
    var all: [FileID] { files.withLock { $0 } }
    var last: FileID? { files.withLock { $0.last } }
}
