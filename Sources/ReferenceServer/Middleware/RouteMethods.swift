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

    /// The methods registered for the route pattern `path` matches — the most specific one, as the
    /// router's trie prefers constant components to parameters (`/v0/meta/bases` is the meta route,
    /// not `/v0/{base}/{table}`); empty when none matches.
    func methods(forPath path: String) -> [HTTPRequest.Method] {
        // The router's trie also skips empty components, so `/api/v1/workspaces/` is the same path.
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        var best: (constants: [Bool], methods: [HTTPRequest.Method])?
        for entry in entries where Self.matches(entry.path, components) {
            let constants = entry.path.components.map { !$0.description.contains("{") && !$0.description.contains("*") }
            if best.map({ Self.moreSpecific(constants, than: $0.constants) }) ?? true {
                best = (constants, entry.methods)
            }
        }
        return best?.methods ?? []
    }

    /// Whether a pattern with these constant components wins over another in the trie: the first
    /// component where they differ is constant in it.
    private static func moreSpecific(_ lhs: [Bool], than rhs: [Bool]) -> Bool {
        for (left, right) in zip(lhs, rhs) where left != right { return left }
        return false
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
