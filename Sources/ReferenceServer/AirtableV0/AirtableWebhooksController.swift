import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PyAirtableModels

/// Airtable's webhooks under `/v0/bases/{base}/webhooks`, in Airtable's payload-cursor model: a
/// webhook records one payload per write to its base (built from the event log: created, changed and
/// destroyed records with `cellValuesByFieldId`, field and table changes), numbered 1, 2, 3…; clients
/// read them by cursor, and a ping (`{"base", "webhook", "timestamp"}` signed with
/// `X-Airtable-Content-MAC`) tells the notification URL there is something to read. Creators and
/// owners manage them, as on Airtable.
struct AirtableWebhooksController {
    let services: ServerServices
    var configuration: AirtableConfiguration { services.configuration.airtable }
    var store: any DataStore { services.store }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("bases/{base}/webhooks", use: create)
        group.get("bases/{base}/webhooks", use: list)
        group.delete("bases/{base}/webhooks/{id}", use: delete)
        group.post("bases/{base}/webhooks/{id}/enableNotifications", use: enableNotifications)
        group.post("bases/{base}/webhooks/{id}/refresh", use: refresh)
        group.get("bases/{base}/webhooks/{id}/payloads", use: payloads)
    }

    private func base(_ context: AppRequestContext) throws -> BaseID {
        guard let base = BaseID(context.parameters.get("base") ?? "") else {
            throw AirtableErrors.modelNotFound("no such base, or it is not shared with this token")
        }
        return base
    }

    private func id(_ context: AppRequestContext) -> String { context.parameters.get("id") ?? "" }

    /// Storage errors in Airtable's terms: a base not there or not shared is 403, a role below
    /// creator 403 `INVALID_PERMISSIONS`, a webhook not there 404.
    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StorageError {
            switch error {
            case .notFound(let what) where what == "webhook":
                throw AirtableErrors.error(.notFound, "NOT_FOUND", "Could not find a webhook with this id")
            case .notFound:
                throw AirtableErrors.modelNotFound("no such base, or it is not shared with this token")
            case .forbidden:
                throw AirtableErrors.error(
                    .forbidden,
                    "INVALID_PERMISSIONS",
                    "managing webhooks needs the creator role or higher in the base's workspace"
                )
            case .invalid(let message, _, _):
                throw AirtableErrors.invalidRequest(message)
            default:
                throw error
            }
        }
    }

    private func body(_ request: Request) async throws -> JSONValue {
        let buffer = try await request.body.collect(upTo: .max)
        guard buffer.readableBytes > 0 else { return .object([:]) }
        do {
            return try JSONCoding.decoder.decode(JSONValue.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw AirtableErrors.error(.unprocessableContent, "INVALID_REQUEST_BODY", ErrorMiddleware.describe(error))
        }
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let base = try base(context)
        let body = try await body(request)
        if let refusal = AirtableWebhookSpecification.refusal(of: body["specification"]) {
            throw AirtableErrors.invalidRequest(refusal)
        }
        var url: String?
        switch body["notificationUrl"] {
        case nil, .null?: url = nil
        case .string(let given)?:
            let target: WebhookTarget
            do {
                target = try WebhookTarget(given, maximumLength: services.configuration.webhooks.maximumURLLength)
            } catch let error as ServerError {
                throw AirtableErrors.invalidRequest("notificationUrl: \(error.message)")
            }
            let webhooks = services.configuration.webhooks
            if !webhooks.allowPrivateTargets,
                let refusal = await target.refusal(resolve: true, allowLoopback: webhooks.allowLoopbackTargets)
            {
                throw AirtableErrors.invalidRequest("notificationUrl is refused: \(refusal)")
            }
            url = given
        default:
            throw AirtableErrors.invalidRequest("notificationUrl must be a URL or null")
        }
        let specification = String(
            decoding: try JSONCoding.encoder.encode(body["specification"] ?? .object([:])),
            as: UTF8.self
        )
        var secret = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in secret.indices { secret[index] = generator.next() }
        let context = context.write(now: services.configuration.now())
        let configuration = self.configuration
        let created = try await mapped {
            try await store.createAirtableWebhook(
                base: base,
                notificationURL: url,
                specification: specification,
                secret: secret,
                lifetime: configuration.webhookLifetime,
                maximumPerBase: configuration.maximumWebhooksPerBase,
                context: context
            )
        }
        struct Created: Encodable {
            var id: String
            var macSecretBase64: String
            var expirationTime: String
        }
        return try AirtableJSON.response(
            Created(
                id: created.id,
                macSecretBase64: Data(secret).base64EncodedString(),
                expirationTime: Timestamp.format(created.expiresAt)
            )
        )
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let base = try base(context)
        let hooks = try await mapped { try await store.airtableWebhooks(base: base, user: user) }
        let now = services.configuration.now()
        var output: [UInt8] = Array(#"{"webhooks":["#.utf8)
        for (index, hook) in hooks.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            output += Array(#"{"id":"#.utf8)
            RecordJSON.appendString(hook.id, to: &output)
            output += Array(#","areNotificationsEnabled":\#(hook.notificationsEnabled)"#.utf8)
            output += Array(#","cursorForNextPayload":\#(hook.nextPayload)"#.utf8)
            output += Array(#","isHookEnabled":\#(hook.isEnabled(now: now))"#.utf8)
            output += Array(#","notificationUrl":"#.utf8)
            if let url = hook.notificationURL {
                RecordJSON.appendString(url, to: &output)
            } else {
                output += Array("null".utf8)
            }
            output += Array(#","expirationTime":"#.utf8)
            RecordJSON.appendString(Timestamp.format(hook.expiresAt), to: &output)
            output += Array(#","lastSuccessfulNotificationTime":"#.utf8)
            if let time = hook.lastSuccessAt {
                RecordJSON.appendString(Timestamp.format(time), to: &output)
            } else {
                output += Array("null".utf8)
            }
            output += Array(#","lastNotificationResult":"#.utf8)
            output += Array((hook.lastResult ?? "null").utf8)
            output += Array(#","specification":"#.utf8)
            output += Array(hook.specification.utf8)
            output.append(UInt8(ascii: "}"))
        }
        output += Array("]}".utf8)
        return AirtableJSON.response(bytes: output)
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let base = try base(context)
        let id = id(context)
        let write = context.write(now: services.configuration.now())
        try await mapped { try await store.deleteAirtableWebhook(base: base, id: id, context: write) }
        return AirtableJSON.response(bytes: Array("{}".utf8))
    }

    @Sendable func enableNotifications(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let base = try base(context)
        let id = id(context)
        guard case .bool(let enable)? = try await body(request)["enable"] else {
            throw AirtableErrors.invalidRequest("enable must be true or false")
        }
        let write = context.write(now: services.configuration.now())
        try await mapped {
            try await store.setAirtableWebhookNotifications(base: base, id: id, enabled: enable, context: write)
        }
        return AirtableJSON.response(bytes: Array("{}".utf8))
    }

    @Sendable func refresh(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let base = try base(context)
        let id = id(context)
        let write = context.write(now: services.configuration.now())
        let lifetime = configuration.webhookLifetime
        let expires = try await mapped {
            try await store.refreshAirtableWebhook(base: base, id: id, lifetime: lifetime, context: write)
        }
        struct Refreshed: Encodable { var expirationTime: String }
        return try AirtableJSON.response(Refreshed(expirationTime: Timestamp.format(expires)))
    }

    /// `?cursor=N&limit=L`: the payloads numbered N and after, at most L (≤ 50); `cursor` in the
    /// answer is the number to ask for next.
    @Sendable func payloads(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let base = try base(context)
        let id = id(context)
        let query = AirtableQuery(request.uri.query.map { Substring($0) })
        var cursor: Int64 = 1
        if let raw = query.first("cursor") {
            guard let value = Int64(raw), value >= 1 else {
                throw AirtableErrors.invalidRequest("cursor must be a number from 1")
            }
            cursor = value
        }
        var limit = 50
        if let raw = query.first("limit") {
            guard let value = Int(raw), (1...50).contains(value) else {
                throw AirtableErrors.invalidRequest("limit must be from 1 to 50")
            }
            limit = value
        }
        let write = context.write(now: services.configuration.now())
        let retention = configuration.payloadRetention
        let page = try await mapped {
            try await store.airtableWebhookPayloads(
                base: base,
                id: id,
                cursor: cursor,
                limit: limit,
                retention: retention,
                context: write
            )
        }
        var output: [UInt8] = Array(
            #"{"cursor":\#(page.cursor),"mightHaveMore":\#(page.mightHaveMore),"payloads":["#.utf8
        )
        for (index, payload) in page.payloads.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            output += Array(payload.utf8)
        }
        output += Array("]}".utf8)
        return AirtableJSON.response(bytes: output)
    }
}
