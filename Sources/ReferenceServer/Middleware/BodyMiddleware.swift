import Hummingbird
import NIOCore
import PyAirtableModels

/// Reads the bodies of writes up to the configured limit (413 past it) and refuses JSON nested
/// deeper than ``RequestLimits/maximumJSONDepth``, before any decoder walks it. Uploads, whose body
/// is streamed to the blob store, pass through as they are.
struct BodyMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let maximumBodySize: Int
    /// Bodies nested deeper are refused before any decoder walks them (``RequestLimits/maximumJSONDepth``).
    var maximumJSONDepth = 64

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard Self.readsBody(of: request) else {
            return try await next(request, context)
        }
        var request = request
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maximumBodySize {
            throw ServerError.payloadTooLarge(limit: maximumBodySize)
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maximumBodySize)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw ServerError.payloadTooLarge(limit: maximumBodySize)
        }
        request.body = .init(buffer: buffer)
        if let offset = JSONNesting.offsetPastDepth(maximumJSONDepth, in: buffer.readableBytesView) {
            throw ServerError.badRequest(
                "the JSON body nests deeper than \(maximumJSONDepth) levels (maximumJSONDepth) at byte \(offset)"
            )
        }
        return try await next(request, context)
    }

    /// Whether the request is a write whose body is read whole: every write but an upload.
    static func readsBody(of request: Request) -> Bool {
        let method = request.method
        return (method == .post || method == .put || method == .patch || method == .delete)
            && !FilesController.streamsBody(request)
    }
}
