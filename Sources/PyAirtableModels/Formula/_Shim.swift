// TEMPORARY shim until the formula engine lands.
import Foundation
public struct FormulaError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var position: Int
    public var description: String { "\(message) at position \(position)" }
}
public protocol FormulaRecord {
    var recordID: String { get }
    func value(ofField name: String) -> FieldValue?
    func type(ofField name: String) -> FieldType?
}
public struct FormulaRecordValues: FormulaRecord {
    public var id: String
    public var values: [String: FieldValue]
    public var types: [String: FieldType]
    public init(id: String, values: [String: FieldValue], types: [String: FieldType]) {
        self.id = id; self.values = values; self.types = types
    }
    public var recordID: String { id }
    public func value(ofField name: String) -> FieldValue? { values[name] }
    public func type(ofField name: String) -> FieldType? { types[name] }
}
public struct Formula: Sendable, Hashable {
    public let source: String
    public static func parse(_ source: String) throws(FormulaError) -> Formula { Formula(source: source) }
    public func validate(fieldTypes: [String: FieldType]) throws(FormulaError) {}
    public func matches(_ record: some FormulaRecord) -> Bool { true }
}
