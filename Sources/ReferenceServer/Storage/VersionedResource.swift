import PyAirtableModels

/// A resource whose answers carry `ETag: "<version>"`.
protocol VersionedResource {
    var version: Int { get }
}

extension User: VersionedResource {}
extension Workspace: VersionedResource {}
extension Base: VersionedResource {}
extension PyAirtableModels.Table: VersionedResource {}
extension Field: VersionedResource {}
extension View: VersionedResource {}
extension EncodedRecord: VersionedResource {}
