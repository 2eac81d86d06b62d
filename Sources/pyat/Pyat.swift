import ArgumentParser

/// The pyat command-line tool.
@main
struct Pyat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pyat",
        abstract: "Work with an Airtable-style data platform from the terminal, and run its reference server.",
        version: "0.1.0",
        subcommands: [
            Serve.self, Login.self, Logout.self, WhoAmI.self, Health.self, Workspaces.self, Bases.self, Tables.self,
            Fields.self, Views.self, Records.self, Webhooks.self, Files.self, Watch.self, Queue.self, Cache.self,
            MirrorCommand.self, Bench.self,
        ]
    )
}
