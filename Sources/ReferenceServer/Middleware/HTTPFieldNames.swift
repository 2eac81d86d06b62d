import HTTPTypes
import PyAirtableModels

extension HTTPField.Name {
    static let requestID = Self(HeaderName.requestID)!
    static let idempotencyKey = Self(HeaderName.idempotencyKey)!
    static let idempotentReplayed = Self(HeaderName.idempotentReplayed)!
    static let lastEventID = Self(HeaderName.lastEventID)!
    static let contentTypeOptions = Self("X-Content-Type-Options")!
}
