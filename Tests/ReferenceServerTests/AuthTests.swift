import Foundation
import HTTPTypes
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

@Suite("Authentication", .timeLimit(.minutes(15)))
struct AuthTests {
    @Test("register, login, users/me and PATCH users/me")
    func registerAndLogin() async throws {
        try await Harness.withServer { api, _ in
            let registered = try await api.call(
                .post,
                "auth/register",
                json: RegisterRequest(email: " Ada@Example.com ", password: "correct horse", name: "Ada"),
                expect: .created,
                as: AuthResponse.self
            )
            #expect(registered.user.email == "ada@example.com")
            #expect(registered.tokens.tokenType == "Bearer")
            #expect(registered.tokens.expiresIn == 900)

            let login = try await api.call(
                .post,
                "auth/login",
                json: LoginRequest(email: "ada@example.com", password: "correct horse"),
                as: AuthResponse.self
            )
            let me = try await api.authorized(login.tokens.accessToken).call(.get, "users/me", as: User.self)
            #expect(me.id == registered.user.id)

            let renamed = try await api.authorized(login.tokens.accessToken).call(
                .patch,
                "users/me",
                json: UpdateUserRequest(name: "Ada L."),
                as: User.self
            )
            #expect(renamed.name == "Ada L.")
            #expect(renamed.version == 2)
        }
    }

    @Test("wrong password, duplicate email, short password and missing token are refused with the right type")
    func refusals() async throws {
        try await Harness.withServer { api, _ in
            let (_, user) = try await api.register("Grace")
            let wrong = try await api.send(
                .post,
                "auth/login",
                json: LoginRequest(email: user.email, password: "nope nope")
            )
            #expect(wrong.status == .unauthorized)
            #expect(wrong.error?.error.type == .auth)

            let duplicate = try await api.send(
                .post,
                "auth/register",
                json: RegisterRequest(email: user.email, password: "long enough", name: "G")
            )
            #expect(duplicate.status == .conflict)
            #expect(duplicate.error?.error.type == .conflict)

            let short = try await api.send(
                .post,
                "auth/register",
                json: RegisterRequest(email: "x@example.com", password: "short", name: "X")
            )
            #expect(short.status == .unprocessableContent)
            #expect(short.error?.error.field == "password")

            let anonymous = try await api.send(.get, "workspaces")
            #expect(anonymous.status == .unauthorized)
            #expect(anonymous.error?.error.requestID?.isEmpty == false)

            let garbage = try await api.authorized("not-a-token").send(.get, "workspaces")
            #expect(garbage.status == .unauthorized)
        }
    }

    @Test("access tokens expire on the injected clock")
    func expiry() async throws {
        let clock = ManualWallClock()
        try await Harness.withServer(clock: clock) { api, _ in
            let (client, _) = try await api.register()
            #expect(try await client.send(.get, "users/me").status == .ok)
            clock.advance(by: 901)
            let expired = try await client.send(.get, "users/me")
            #expect(expired.status == .unauthorized)
            #expect(expired.headers[.wwwAuthenticate] == "Bearer")
        }
    }

    @Test("refresh rotates; presenting a spent refresh token revokes the whole family")
    func refreshReuse() async throws {
        try await Harness.withServer { api, _ in
            let auth = try await api.call(
                .post,
                "auth/register",
                json: RegisterRequest(email: "r@example.com", password: "password1", name: "R"),
                expect: .created,
                as: AuthResponse.self
            )
            let first = try await api.call(
                .post,
                "auth/refresh",
                json: RefreshRequest(refreshToken: auth.tokens.refreshToken),
                as: RefreshResponse.self
            )
            #expect(first.tokens.refreshToken != auth.tokens.refreshToken)
            #expect(try await api.authorized(first.tokens.accessToken).send(.get, "users/me").status == .ok)

            // The original token again: reuse. It fails and revokes the family, so the rotated
            // token dies too.
            let reuse = try await api.send(
                .post,
                "auth/refresh",
                json: RefreshRequest(refreshToken: auth.tokens.refreshToken)
            )
            #expect(reuse.status == .unauthorized)
            let rotated = try await api.send(
                .post,
                "auth/refresh",
                json: RefreshRequest(refreshToken: first.tokens.refreshToken)
            )
            #expect(rotated.status == .unauthorized)

            // A separate login is another family and still works.
            let login = try await api.call(
                .post,
                "auth/login",
                json: LoginRequest(email: "r@example.com", password: "password1"),
                as: AuthResponse.self
            )
            let again = try await api.send(
                .post,
                "auth/refresh",
                json: RefreshRequest(refreshToken: login.tokens.refreshToken)
            )
            #expect(again.status == .ok)
        }
    }

    @Test("logout revokes the refresh token")
    func logout() async throws {
        try await Harness.withServer { api, _ in
            let auth = try await api.call(
                .post,
                "auth/register",
                json: RegisterRequest(email: "l@example.com", password: "password1", name: "L"),
                expect: .created,
                as: AuthResponse.self
            )
            let client = api.authorized(auth.tokens.accessToken)
            let out = try await client.send(
                .post,
                "auth/logout",
                json: RefreshRequest(refreshToken: auth.tokens.refreshToken)
            )
            #expect(out.status == .noContent)
            let refresh = try await api.send(
                .post,
                "auth/refresh",
                json: RefreshRequest(refreshToken: auth.tokens.refreshToken)
            )
            #expect(refresh.status == .unauthorized)
        }
    }

    @Test("personal access tokens authenticate, list without secrets, and stop working when deleted")
    func personalAccessTokens() async throws {
        try await Harness.withServer { api, _ in
            let (client, user) = try await api.register()
            let created = try await client.call(
                .post,
                "auth/tokens",
                json: CreateAccessTokenRequest(name: "ci"),
                expect: .created,
                as: AccessToken.self
            )
            let secret = try #require(created.token)
            #expect(secret.hasPrefix("pat_"))
            let pat = api.authorized(secret)
            #expect(try await pat.call(.get, "users/me", as: User.self).id == user.id)

            let listed = try await client.call(.get, "auth/tokens", as: Page<AccessToken>.self)
            #expect(listed.data.map(\.id) == [created.id])
            #expect(listed.data.allSatisfy { $0.token == nil })

            #expect(try await client.send(.delete, "auth/tokens/\(created.id)").status == .noContent)
            #expect(try await pat.send(.get, "users/me").status == .unauthorized)
        }
    }
}
