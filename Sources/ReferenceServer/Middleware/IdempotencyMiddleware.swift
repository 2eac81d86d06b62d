import Crypto
import Foundation
import Hummingbird
import NIOCore
import PyAirtableModels

/// For writes that carry an `Idempotency-Key`, binds the key to the caller and a keyed hash of the
/// request (the body can hold a password, so a plain hash of it must not be stored): the store
/// replays the stored answer of a repeated request and refuses the key with another request.
///
/// Runs after ``BodyMiddleware``, which has read the body whole; `maximumBodySize` is the same limit,
/// so a body that somehow arrives unread is still bounded.
struct IdempotencyMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let keys: StorageKeys
    let maximumBodySize: Int

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard BodyMiddleware.readsBody(of: request), let key = request.headers[.idempotencyKey] else {
            return try await next(request, context)
        }
        // Exactly the document's pattern `^[!-~]{1,255}$`: visible ASCII, no spaces or controls.
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw ServerError.badRequest("Idempotency-Key must be 1 to 255 visible ASCII characters")
        }
        var request = request
        var context = context
        // Already in memory (BodyMiddleware read it): this only hands the buffer back.
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maximumBodySize)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw ServerError.payloadTooLarge(limit: maximumBodySize)
        }
        request.body = .init(buffer: buffer)
        var hasher = SHA256()
        hasher.update(data: Data(request.method.rawValue.utf8))
        hasher.update(data: Data(" \(request.uri.path)\n".utf8))
        hasher.update(data: Self.canonicalBody(Data(buffer.readableBytesView)))
        let hash = keys.requestHash(digest: Array(hasher.finalize()))
        // Writes need a user; the key is bound to it once authentication ran.
        let principal = context.principal?.userID.rawValue ?? "anonymous"
        context.idempotency = IdempotencyClaim(principal: principal, key: key, requestHash: hash)
        return try await next(request, context)
    }

    /// JSON bodies re-encoded with sorted keys, so a retry whose encoder ordered keys differently
    /// still matches its idempotency key; anything else as sent.
    static func canonicalBody(_ data: Data) -> Data {
        guard let value = try? JSONCoding.decoder.decode(JSONValue.self, from: data),
            let canonical = try? JSONCoding.encoder.encode(value)
        else { return data }
        return canonical
    }
}
