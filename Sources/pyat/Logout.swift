import ArgumentParser
import Foundation
import PyAirtableClient

extension Pyat {
    /// `pyat logout`: revokes the session and forgets the saved credentials.
    struct Logout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign out: revoke the session on the server and forget the saved credentials."
        )

        @OptionGroup(title: "Global options")
        var options: ServerOptions

        func run() async throws {
            let store = FileTokenStore()
            let server = try options.resolvedServerURL().absoluteString
            guard try await store.load(server: server) != nil else {
                options.output.message("Not signed in to \(server).")
                return
            }
            do {
                try await options.withClient(credentials: .store(store)) { try await $0.auth.logout() }
            } catch let failure as CommandFailure {
                // The saved credentials go even when the server cannot be told: signing out locally
                // is what the person asked for.
                try await store.remove(server: server)
                FileHandle.standardError.write(
                    Data("warning: signed out here, but the server was not told: \(failure.message)\n".utf8)
                )
                return
            }
            options.output.message("Signed out of \(server).")
        }
    }
}
