import Foundation

/// A query string read as an HTML form, which is how Airtable's clients write it: pyairtable (through
/// `requests`) sends a space as `+` and brackets as `%5B%5D` (`fields%5B%5D=Name+Two`). Each name and
/// value has `+` turned into a space and is then percent-decoded; a malformed escape is kept as sent.
struct AirtableQuery: Sendable {
    private(set) var items: [(name: String, value: String)] = []

    init(_ query: Substring?) {
        guard let query, !query.isEmpty else { return }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0])
            let value = parts.count > 1 ? Self.decode(parts[1]) : ""
            items.append((name, value))
        }
    }

    static func decode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    /// The first value of `name`.
    func first(_ name: String) -> String? {
        items.first { $0.name == name }?.value
    }

    /// Every value of `name` and of `name[]`, in order.
    func all(_ name: String) -> [String] {
        let bracketed = name + "[]"
        return items.filter { $0.name == name || $0.name == bracketed }.map(\.value)
    }

    /// `sort[0][field]=Name&sort[0][direction]=desc…` in index order; an index past `limit` is a 422
    /// (`maximumSortKeys`) rather than a large allocation.
    func sort(limit: Int) throws -> [(field: String, direction: String?)] {
        var fields: [Int: String] = [:]
        var directions: [Int: String] = [:]
        for item in items where item.name.hasPrefix("sort[") {
            let inside = item.name.dropFirst("sort[".count)
            guard let close = inside.firstIndex(of: "]"), let index = Int(inside[..<close]), index >= 0 else {
                throw AirtableErrors.invalidRequest("'\(item.name)' is not sort[N][field] or sort[N][direction]")
            }
            guard index < limit else {
                throw AirtableErrors.invalidRequest(
                    "sort has more than \(limit) keys, over the limit (maximumSortKeys)"
                )
            }
            switch inside[inside.index(after: close)...] {
            case "[field]": fields[index] = item.value
            case "[direction]": directions[index] = item.value
            default:
                throw AirtableErrors.invalidRequest("'\(item.name)' is not sort[N][field] or sort[N][direction]")
            }
        }
        for index in directions.keys where fields[index] == nil {
            throw AirtableErrors.invalidRequest("sort[\(index)] has a direction but no field")
        }
        return fields.sorted { $0.key < $1.key }.map { ($0.value, directions[$0.key]) }
    }
}
