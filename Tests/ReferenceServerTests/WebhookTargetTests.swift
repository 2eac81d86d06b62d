import Foundation
import HTTPTypes
import PyAirtableModels
import ReferenceServerTesting
import TestSupport
import Testing

@testable import ReferenceServer

/// Server-side request forgery through webhook targets: IPv6 forms that carry an IPv4 address, names
/// that do not resolve, and refusals that do not tell what a name resolves to.
@Suite("Webhook targets: embedded IPv4, DNS failure, no resolved address in refusals", .timeLimit(.minutes(15)))
struct WebhookTargetTests {
    /// An address, the kind of IPv4 address it carries, and the form carrying it.
    struct Embedded: Sendable, CustomTestStringConvertible {
        var literal: String
        var kind: String
        var embedding: String
        var testDescription: String { "\(literal) (\(embedding), \(kind))" }
    }

    static let embedded: [Embedded] = [
        Embedded(literal: "::ffff:127.0.0.1", kind: "loopback", embedding: "IPv4-mapped"),
        Embedded(literal: "::ffff:10.1.2.3", kind: "private", embedding: "IPv4-mapped"),
        Embedded(literal: "::ffff:169.254.169.254", kind: "link-local", embedding: "IPv4-mapped"),
        Embedded(literal: "::127.0.0.1", kind: "loopback", embedding: "IPv4-compatible"),
        Embedded(literal: "::192.168.0.1", kind: "private", embedding: "IPv4-compatible"),
        Embedded(literal: "::169.254.0.1", kind: "link-local", embedding: "IPv4-compatible"),
        Embedded(literal: "::ffff:0:127.0.0.1", kind: "loopback", embedding: "IPv4-translated"),
        Embedded(literal: "64:ff9b::127.0.0.1", kind: "loopback", embedding: "NAT64"),
        Embedded(literal: "64:ff9b::a00:1", kind: "private", embedding: "NAT64"),
        Embedded(literal: "64:ff9b::a9fe:a9fe", kind: "link-local", embedding: "NAT64"),
        // The local-use prefix, at /96 and at /48 (the IPv4 address split around the u octet).
        Embedded(literal: "64:ff9b:1::7f00:1", kind: "loopback", embedding: "NAT64"),
        Embedded(literal: "64:ff9b:1:c0a8:0:100::", kind: "private", embedding: "NAT64"),
        Embedded(literal: "64:ff9b:1::a9fe:101", kind: "link-local", embedding: "NAT64"),
        Embedded(literal: "2002:7f00:1::", kind: "loopback", embedding: "6to4"),
        Embedded(literal: "2002:a00:1::1", kind: "private", embedding: "6to4"),
        Embedded(literal: "2002:a9fe:a9fe::", kind: "link-local", embedding: "6to4"),
        // Teredo: the server's address (bits 32–63), or the client's, stored inverted (bits 96–127).
        Embedded(literal: "2001:0:7f00:1::", kind: "loopback", embedding: "Teredo"),
        Embedded(literal: "2001:0:4136:e378:8000:63bf:f5ff:fffe", kind: "private", embedding: "Teredo"),
        Embedded(literal: "2001:0:4136:e378:8000:63bf:5601:fefe", kind: "link-local", embedding: "Teredo"),
    ]

    @Test("an IPv6 address carrying a non-public IPv4 address is judged by it", arguments: embedded)
    func embeddedForms(_ case: Embedded) throws {
        let address = try #require(IPAddress(literal: `case`.literal))
        let restriction = try #require(address.restriction, "\(`case`.literal) passed as public")
        #expect(restriction.kind == `case`.kind)
        #expect(restriction.embedding == `case`.embedding)
    }

    @Test(
        "the same forms carrying a public IPv4 address pass",
        arguments: [
            "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "64:ff9b:1::808:808", "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7", "2001:4860:4860::8888",
        ]
    )
    func publicEmbeddedForms(_ literal: String) throws {
        let address = try #require(IPAddress(literal: literal))
        #expect(address.restriction == nil, "\(literal): \(String(describing: address.restriction))")
    }

    @Test("every embedded form is refused at registration, naming the form and not the IPv4 address it carries")
    func refusedAtRegistration() async throws {
        try await WebhookTests.withServer(webhooks: WebhookConfiguration()) { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (_, base, _) = try await owner.scaffold()
            for entry in Self.embedded {
                let response = try await owner.send(
                    .post,
                    "bases/\(base.id)/webhooks",
                    json: CreateWebhookRequest(url: "http://[\(entry.literal)]:8080/hook")
                )
                let error = expectError(response, .unprocessableContent, .validation, entry.literal)
                let message = error?.message ?? ""
                #expect(message.contains("embeds a \(entry.kind) IPv4 address (\(entry.embedding))"), "\(message)")
                for carried in ["127.0.0.1", "10.1.2.3", "169.254.169.254", "192.168.0.1", "10.0.0.1"]
                where !entry.literal.contains(carried) {
                    #expect(!message.contains(carried), "\(message)")
                }
            }
            let listed = try await owner.call(.get, "bases/\(base.id)/webhooks", as: Page<Webhook>.self).data
            #expect(listed.isEmpty)
        }
    }

    @Test("a name resolving to a private address is refused without saying which address")
    func resolvedAddressIsNotEchoed() async throws {
        // `127.1` is no literal IPv4 address for inet_pton, but the resolver reads it as 127.0.0.1.
        #expect(IPAddress(literal: "127.1") == nil)
        let target = try WebhookTarget("http://127.1:8080/hook", maximumLength: 2048)
        let refusal = try #require(await target.refusal(resolve: true))
        #expect(refusal == "127.1 resolves to a private address")
        try await WebhookTests.withServer(webhooks: WebhookConfiguration()) { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (_, base, _) = try await owner.scaffold()
            let response = try await owner.send(
                .post,
                "bases/\(base.id)/webhooks",
                json: CreateWebhookRequest(url: "http://127.1:8080/hook")
            )
            let error = expectError(response, .unprocessableContent, .validation)
            #expect(error?.message.contains("resolves to a private address") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("127.0.0.1") == false)
            #expect(!response.text.contains("127.0.0.1"))
        }
    }

    @Test("a name that does not resolve is refused at registration and at delivery")
    func unresolvableName() async throws {
        let target = try WebhookTarget("https://no-such-host.invalid/hook", maximumLength: 2048)
        #expect(await target.refusal(resolve: true) == "no-such-host.invalid could not be resolved")
        try await WebhookTests.withServer(webhooks: WebhookConfiguration()) { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (_, base, _) = try await owner.scaffold()
            let response = try await owner.send(
                .post,
                "bases/\(base.id)/webhooks",
                json: CreateWebhookRequest(url: "https://no-such-host.invalid/hook")
            )
            let error = expectError(response, .unprocessableContent, .validation)
            #expect(error?.message.contains("could not be resolved") == true, "\(error?.message ?? "")")
        }

        // Registered where private targets were allowed, then delivered by a strict server.
        let directory = try TemporaryDirectory()
        let path = directory.path
        let (token, hook) = try await WebhookTests.withServer(directory: path, worker: false) { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (_, base, table) = try await owner.scaffold()
            let hook = try await WebhookTests.createHook(
                owner,
                base: base.id,
                url: "https://no-such-host.invalid/hook",
                events: [.recordCreated]
            )
            _ = try await owner.createRecord(in: table.id, ["Name": "to nowhere"])
            return (try #require(owner.token), hook)
        }
        let strict = WebhookConfiguration(initialBackoff: .milliseconds(10), maximumConsecutiveFailures: 1)
        try await WebhookTests.withServer(directory: path, webhooks: strict) { api, _ in
            let log = try await WebhookTests.waitForLog(api.authorized(token), hook.id) { $0.first?.status == .failed }
            #expect(log.first?.error?.contains("could not be resolved") == true, "\(log)")
        }
    }

    @Test("loopback allowance covers loopback and its mapped form, never loopback behind a translator")
    func loopbackAllowance() async throws {
        let allow = { (url: String) async throws -> String? in
            try await WebhookTarget(url, maximumLength: 2048).refusal(resolve: false, allowLoopback: true)
        }
        #expect(try await allow("http://127.0.0.1:9/hook") == nil)
        #expect(try await allow("http://[::1]:9/hook") == nil)
        #expect(try await allow("http://[::ffff:127.0.0.1]:9/hook") == nil)
        for translated in ["64:ff9b::7f00:1", "2002:7f00:1::", "2001:0:7f00:1::"] {
            let refusal = try await allow("http://[\(translated)]:9/hook")
            #expect(refusal?.contains("embeds a loopback IPv4 address") == true, "\(translated): \(refusal ?? "nil")")
        }
        #expect(try await allow("http://[::ffff:10.0.0.1]:9/hook")?.contains("private") == true)
    }
}
