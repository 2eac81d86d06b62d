import ArgumentParser
import PyAirtableClient

/// `--if-version N`: write only if the resource is still at version N (else exit status 4).
struct VersionPrecondition: ParsableArguments {
    @Option(
        name: .customLong("if-version"),
        help: ArgumentHelp(
            "Apply only if the resource is still at this version (exit status 4 if not).",
            valueName: "n"
        )
    )
    var ifVersion: Int?

    func validate() throws {
        if let ifVersion, ifVersion < 1 { throw ValidationError("--if-version must be 1 or more") }
    }
}

/// `--on-conflict STRATEGY`: how a record write settles a change made meanwhile by someone else.
struct ConflictOption: ParsableArguments {
    enum Strategy: String, ExpressibleByArgument, CaseIterable {
        case fail
        case serverWins = "server-wins"
        case clientWins = "client-wins"
        case merge
    }

    @Option(
        name: .customLong("on-conflict"),
        help: ArgumentHelp(
            """
            When the record changed since the version the write started from: fail (exit status 4), \
            server-wins, client-wins, or merge field by field (a field changed on both sides keeps the \
            server's value). Default: fail with --if-version, merge without.
            """,
            valueName: "strategy"
        )
    )
    var strategy: Strategy?

    /// The SDK strategy: the one asked for, or `fail` when `--if-version` names a version.
    func resolved(ifVersion: Int?) -> ConflictStrategy? {
        switch strategy ?? (ifVersion != nil ? .fail : nil) {
        case .fail: .fail
        case .serverWins: .serverWins
        case .clientWins: .clientWins
        case .merge: .merge()
        case nil: nil
        }
    }
}
