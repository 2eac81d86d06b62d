import ArgumentParser
import PyAirtableClient

extension Pyat {
    /// `pyat whoami`: the signed-in user.
    struct WhoAmI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show the signed-in user.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        func run() async throws {
            let user = try await options.withClient { try await $0.users.me() }
            try options.output.item(user)
        }
    }
}
