import Hummingbird

/// Gives each request an id (the caller's `X-Request-ID` when it is sane, else a new one) and echoes
/// it on the response. Log lines about a request carry it as `request_id` (set where they are
/// written: putting it in the logger's metadata costs every request a copy of that metadata).
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        if let incoming = request.headers[.requestID], incoming.count <= 128,
            incoming.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
        {
            context.requestID = incoming
        } else {
            context.requestID = RequestIDs.next()
        }
        var response = try await next(request, context)
        response.headers[.requestID] = context.requestID
        return response
    }
}
