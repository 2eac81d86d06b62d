import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PyAirtableModels

/// Checks of user-supplied names and text.
enum InputRules {
    static let maximumNameLength = 255

    static func name(_ value: String, field: String = "name") throws -> String {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw ServerError.validation("\(field) must not be empty", field: field) }
        guard trimmed.count <= maximumNameLength else {
            throw ServerError.validation("\(field) must be at most \(maximumNameLength) characters", field: field)
        }
        return trimmed
    }

    static func optionalName(_ value: String?, field: String = "name") throws -> String? {
        try value.map { try name($0, field: field) }
    }
}
