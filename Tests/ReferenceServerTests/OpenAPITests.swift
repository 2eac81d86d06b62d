import Foundation
import HTTPTypes
import Hummingbird
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

/// Keeps `Sources/ReferenceServer/Resources/openapi.yaml`, what the server serves and the router in step.
@Suite("OpenAPI document", .timeLimit(.minutes(15)))
struct OpenAPITests {
    /// One operation: an upper-case HTTP method and a path as the router prints it (`/api/v1/tables/{id}`).
    struct Operation: Hashable, Comparable, CustomStringConvertible {
        var method: String
        var path: String

        var description: String { "\(method) \(path)" }

        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.path, lhs.method) < (rhs.path, rhs.method) }
    }

    @Test("every route the router registers is documented, and nothing else")
    func routesMatchDocument() async throws {
        let directory = try TemporaryDirectory()
        let services = try await ServerServices.open(
            configuration: Harness.configuration(dataDirectory: directory.path, clock: ManualWallClock()),
            logger: Harness.logger
        )
        let router = buildRouter(services: services)
        let registered = Set(
            router.routes.map { Operation(method: $0.method.rawValue.uppercased(), path: "\($0.path)") }
        )
        let documented = try OpenAPIPaths.operations(in: Self.embeddedDocument)

        #expect(!registered.isEmpty)
        let undocumented = registered.subtracting(documented).sorted()
        let unrouted = documented.subtracting(registered).sorted()
        #expect(
            undocumented.isEmpty,
            "routes missing from openapi.yaml:\n\(undocumented.map { "  \($0)" }.joined(separator: "\n"))"
        )
        #expect(
            unrouted.isEmpty,
            "openapi.yaml documents routes the router does not have:\n\(unrouted.map { "  \($0)" }.joined(separator: "\n"))"
        )
    }

    @Test("every documented path answers each method it lacks with 405 and Allow naming its methods; unknown paths 404")
    func undocumentedMethodsAre405() async throws {
        let documented = try OpenAPIPaths.operations(in: Self.embeddedDocument)
        let methodsByPath = Dictionary(grouping: documented, by: \.path).mapValues { Set($0.map(\.method)) }
        let candidates: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete, .options, .trace]
        try await Harness.withServer { api, _ in
            for (path, methods) in methodsByPath.sorted(by: { $0.key < $1.key }) {
                // Any segment stands for a parameter: a method the path lacks is 405 whatever the id.
                let concrete = path.replacing(#/\{[^}]+\}/#, with: "x")
                for method in candidates where !methods.contains(method.rawValue) {
                    let response = try await api.send(method, concrete)
                    if path.hasPrefix("/v0/") {
                        // Airtable's error shape under /v0.
                        try AirtableMetaTests.expectAirtableError(response, .methodNotAllowed, "METHOD_NOT_ALLOWED")
                    } else {
                        expectError(response, .methodNotAllowed, .validation, "\(method) \(path)")
                    }
                    let allow = Set(
                        (response.headers[.allow] ?? "").split(separator: ",").map {
                            $0.trimmingCharacters(in: .whitespaces)
                        }
                    )
                    #expect(allow == methods, "\(method) \(path): Allow '\(response.headers[.allow] ?? "")'")
                }
            }
            // A trailing slash is the same path to the router, so the same answer.
            let slash = try await api.send(.delete, "/api/v1/workspaces/")
            expectError(slash, .methodNotAllowed, .validation)
            #expect(slash.headers[.allow] == "GET, POST")
            for path in ["/api/v1/nothing-here", "/api/v1/workspaces/x/y/z", "/api"] {
                expectError(try await api.send(.trace, path), .notFound, .notFound, path)
                expectError(try await api.send(.get, path), .notFound, .notFound, path)
            }
        }
    }

    @Test("the paths reader finds methods under each path and stops at the next top-level key")
    func pathsReader() throws {
        let yaml = """
            openapi: 3.1.0
            paths:
              # a comment
              /a/{id}:
                parameters:
                  - $ref: '#/components/parameters/Id'
                get:
                  summary: get: a thing
                  responses: {}
                delete:
                  responses: {}

              '/b':
                summary: b
                post:
                  responses: {}
            components:
              schemas:
                get:
                  type: object
            """
        #expect(
            try OpenAPIPaths.operations(in: yaml)
                == [
                    Operation(method: "GET", path: "/a/{id}"), Operation(method: "DELETE", path: "/a/{id}"),
                    Operation(method: "POST", path: "/b"),
                ]
        )
        #expect(throws: OpenAPIPaths.ReadError.self) { try OpenAPIPaths.operations(in: "openapi: 3.1.0\n") }
    }

    @Test("GET /openapi.yaml serves the document as YAML, byte for byte the file in the repository")
    func servesDocument() async throws {
        let expected = try Data(contentsOf: Self.documentFile())
        try await Harness.withServer { api, _ in
            let response = try await api.send(.get, "/openapi.yaml")
            #expect(response.status == .ok)
            let contentType = response.headers[.contentType] ?? ""
            #expect(contentType.hasPrefix("application/yaml"), "content type: \(contentType)")
            // A Bool, so a failure prints where they differ rather than two 150 kB byte arrays.
            let isSame = response.body == expected
            let difference = Self.firstDifference(response.body, expected)
            #expect(isSame, "GET /openapi.yaml differs from \(Self.documentPath) (\(difference))")
            #expect(response.headers[.init("X-Request-ID")!] != nil)
        }
    }

    // MARK: Helpers

    /// The directory holding Package.swift, found from this file's path.
    static func repositoryRoot(filePath: String = #filePath) throws -> URL {
        var directory = URL(fileURLWithPath: filePath).deletingLastPathComponent()
        while directory.path != "/" {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
                return directory
            }
            directory.deleteLastPathComponent()
        }
        throw OpenAPIPaths.ReadError(message: "no Package.swift above \(filePath)")
    }

    /// Where the document lives in the repository, relative to its root.
    static let documentPath = "Sources/ReferenceServer/Resources/openapi.yaml"

    /// The document as the server has it: the bytes SwiftPM embedded from `documentPath`.
    static var embeddedDocument: String { String(decoding: PackageResources.openapi_yaml, as: UTF8.self) }

    /// The document's file in this checkout.
    static func documentFile() throws -> URL {
        try repositoryRoot().appendingPathComponent(documentPath)
    }

    /// Where two texts first differ, as a line number with both lines, for failure messages.
    static func firstDifference(_ served: Data, _ file: Data) -> String {
        let left = String(decoding: served, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let right = String(decoding: file, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        for index in 0..<max(left.count, right.count) {
            let a = index < left.count ? String(left[index]) : "<end>"
            let b = index < right.count ? String(right[index]) : "<end>"
            if a != b { return "first difference at line \(index + 1): served '\(a)', file '\(b)'" }
        }
        return "same lines, different bytes"
    }

}

/// A line-based reader of the top-level `paths:` block of an OpenAPI YAML document: enough to list
/// (method, path) pairs written in block style, without a YAML dependency.
enum OpenAPIPaths {
    struct ReadError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    static let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    /// The operations of the document, in document order, each once.
    static func operations(in yaml: String) throws -> Set<OpenAPITests.Operation> {
        Set(try orderedOperations(in: yaml))
    }

    static func orderedOperations(in yaml: String) throws -> [OpenAPITests.Operation] {
        var inPaths = false
        var sawPaths = false
        var pathIndent: Int?
        var methodIndent: Int?
        var currentPath: String?
        var result: [OpenAPITests.Operation] = []
        for rawLine in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            let content = line.drop { $0 == " " }
            if content.isEmpty || content.hasPrefix("#") { continue }
            let indent = line.count - content.count
            if indent == 0 {
                inPaths = key(of: content) == "paths"
                if inPaths {
                    guard !sawPaths else { throw ReadError(message: "two top-level 'paths:' blocks") }
                    sawPaths = true
                }
                continue
            }
            guard inPaths, let key = key(of: content) else { continue }
            let expectedPathIndent = pathIndent ?? indent
            if indent == expectedPathIndent {
                pathIndent = indent
                currentPath = key
                methodIndent = nil
            } else if indent > expectedPathIndent, let path = currentPath {
                let level = methodIndent ?? indent
                methodIndent = level
                if indent == level, methods.contains(key) {
                    let operation = OpenAPITests.Operation(method: key.uppercased(), path: path)
                    guard !result.contains(operation) else {
                        throw ReadError(message: "\(operation) appears twice in openapi.yaml")
                    }
                    result.append(operation)
                }
            }
        }
        guard sawPaths else { throw ReadError(message: "no top-level 'paths:' block") }
        return result
    }

    /// The key of a `key: value` or `key:` line (quotes removed), or nil for list items and other lines.
    private static func key(of content: Substring) -> String? {
        guard !content.hasPrefix("- ") else { return nil }
        var text = content
        if let comment = text.range(of: " #") { text = text[..<comment.lowerBound] }
        let key: Substring
        if let quote = text.first, quote == "'" || quote == "\"" {
            guard let close = text.dropFirst().firstIndex(of: quote),
                text[text.index(after: close)...].hasPrefix(":")
            else { return nil }
            key = text[text.index(after: text.startIndex)..<close]
        } else {
            guard let colon = text.range(of: ":") else { return nil }
            let after = text[colon.upperBound...]
            guard after.isEmpty || after.hasPrefix(" ") else { return nil }
            key = text[..<colon.lowerBound]
        }
        return String(key).trimmingCharacters(in: .whitespaces)
    }
}
