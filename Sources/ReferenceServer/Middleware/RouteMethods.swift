import HTTPTypes
import Hummingbird
import PyAirtableModels

/// The methods the router serves on each of its paths, to tell "no such path" (404) from "this
/// path, another method" (405 with `Allow`, RFC 9110 §15.5.6).
struct RouteMethods: Sendable {
    private let entries: [(path: RouterPath, methods: [HTTPRequest.Method])]

    /// The order methods are listed in an `Allow` header.
    private static let order: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options, .trace]

    init(routes: [(path: RouterPath, method: HTTPRequest.Method)]) {
        var byPath: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]
        for route in routes {
            byPath[route.path.description, default: (route.path, [])].methods.insert(route.method)
        }
        entries = byPath.values.map { entry in
            (entry.path, entry.methods.sorted { Self.rank($0) < Self.rank($1) })
        }
    }

    /// The methods registered for the first route pattern `path` matches; empty when none does.
    func methods(forPath path: String) -> [HTTPRequest.Method] {
        // The router's trie also skips empty components, so `/api/v1/workspaces/` is the same path.
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        for entry in entries where Self.matches(entry.path, components) {
            return entry.methods
        }
        return []
    }

    private static func matches(_ pattern: RouterPath, _ components: [Substring]) -> Bool {
        var index = components.startIndex
        for element in pattern.components {
            if element.description == "**" { return true }
            guard index < components.endIndex, element ~= components[index] else { return false }
            index += 1
        }
        return index == components.endIndex
    }

    private static func rank(_ method: HTTPRequest.Method) -> Int {
        order.firstIndex(of: method) ?? order.count
    }
}
