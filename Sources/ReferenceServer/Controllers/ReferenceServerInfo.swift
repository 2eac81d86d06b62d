import Crypto
import Foundation
import Hummingbird
import PyAirtableModels

/// Facts about this build of the server.
public enum ReferenceServerInfo {
    public static let version = "0.1.0"
}
