import ArgumentParser
import PyAirtableClient

extension Pyat {
    /// `pyat health`: whether the server and its database are up.
    struct Health: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that the server and its database are up (exit status 1 when not)."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        func run() async throws {
            let health = try await options.withClient { try await $0.health() }
            try options.output.item(health)
            guard health.status == "ok" else { throw CommandFailure("the server reports '\(health.status)'") }
        }
    }
}
