import ArgumentParser
import Foundation
import PyAirtableClient
import PyAirtableModels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Pyat {
    /// `pyat login`: signs in and saves the credentials for later commands.
    struct Login: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign in and save the credentials for this server.",
            discussion: """
                Signs in with an email and password (asked for on a terminal when not given), or saves a
                personal access token given with --token. Credentials go to
                $XDG_CONFIG_HOME/pyat/credentials.json (mode 0600), keyed by server URL.
                """
        )

        @OptionGroup(title: "Global options")
        var options: ServerOptions

        @Option(help: "The account's email (asked for on a terminal when not given).")
        var email: String?

        @Flag(help: "Read the password from the first line of standard input.")
        var passwordStdin = false

        @Option(
            name: .customLong("token"),
            help: ArgumentHelp("Save a personal access token instead.", valueName: "pat")
        )
        var personalAccessToken: String?

        func validate() throws {
            if let personalAccessToken {
                guard email == nil, !passwordStdin else {
                    throw ValidationError("--token cannot be combined with --email or --password-stdin")
                }
                guard !personalAccessToken.isEmpty else { throw ValidationError("--token must not be empty") }
            }
        }

        func run() async throws {
            let store = FileTokenStore()
            let user: User
            if let personalAccessToken {
                // Checked before it is saved, so a mistyped token never replaces a working login.
                user = try await options.withClient(credentials: .personalAccessToken(personalAccessToken)) {
                    try await $0.users.me()
                }
                let server = try options.resolvedServerURL().absoluteString
                try await store.save(
                    StoredCredentials(personalAccessToken: personalAccessToken, userID: user.id, email: user.email),
                    server: server
                )
            } else {
                let email = try self.email ?? Terminal.prompt("Email: ")
                let password =
                    try passwordStdin ? Terminal.readPasswordFromStandardInput() : Terminal.promptSecret("Password: ")
                user = try await options.withClient(credentials: .store(store)) { client in
                    do {
                        return try await client.auth.login(email: email, password: password).user
                    } catch let error as PyAirtableError where error == .unauthorized {
                        throw CommandFailure(
                            "The email or password is wrong." + (error.requestID.map { " (request \($0))" } ?? "")
                        )
                    }
                }
            }
            let output = options.output
            if options.format == .table {
                output.message(
                    "Signed in to \(try options.resolvedServerURL().absoluteString) as \(user.email) (\(user.name))."
                )
            } else {
                try output.item(user)
            }
        }
    }
}

/// Reading answers from the person at the terminal.
enum Terminal {
    /// Whether standard input is a terminal.
    static var isInteractive: Bool { isatty(STDIN_FILENO) != 0 }

    /// Asks `question` on standard error and reads one line from a terminal.
    /// - Throws: `ValidationError` when standard input is not a terminal, or gives nothing.
    static func prompt(_ question: String) throws -> String {
        guard isInteractive else { throw ValidationError("no terminal to ask on: pass --email") }
        FileHandle.standardError.write(Data(question.utf8))
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw ValidationError("an answer is needed")
        }
        return line
    }

    /// Asks `question` and reads one line without echoing it.
    /// - Throws: `ValidationError` when standard input is not a terminal, or gives nothing.
    static func promptSecret(_ question: String) throws -> String {
        guard isInteractive else {
            throw ValidationError("no terminal to ask for the password on: pass --password-stdin")
        }
        FileHandle.standardError.write(Data(question.utf8))
        var original = termios()
        let canHide = tcgetattr(STDIN_FILENO, &original) == 0
        if canHide {
            var hidden = original
            hidden.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &hidden)
        }
        let line = readLine(strippingNewline: true)
        if canHide {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &original)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line, !line.isEmpty else { throw ValidationError("a password is needed") }
        return line
    }

    /// The first line of standard input, for `--password-stdin`.
    /// - Throws: `ValidationError` when standard input is empty.
    static func readPasswordFromStandardInput() throws -> String {
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw ValidationError("--password-stdin: standard input holds no password")
        }
        return line
    }
}
