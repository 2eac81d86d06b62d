import ArgumentParser

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
