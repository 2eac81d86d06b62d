import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

extension Pyat {
    /// Parses and runs a command like ArgumentParser's own `main()`, with pyat's exit statuses:
    /// 2 for a usage error (ArgumentParser's would be 64), 4 for a conflict, 1 for other failures,
    /// each reported as one `error:` line on standard error.
    static func main() async {
        do {
            var command = try parseAsRoot()
            // Swift Concurrency's jobs run on NIO's event loops, where the server's and the clients'
            // sockets are: an await on a query or a request resumes on the loop that read its answer,
            // not after a hop to another thread (the hops were most of a loaded server's CPU).
            if let threads = (command as? Serve)?.threads {
                NIOSingletons.groupLoopCountSuggestion = threads
            }
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as CommandFailure {
            fail(failure)
        } catch let error as ValidationError {
            // Thrown by `run()` once it knows more than `validate()` could (a table's field types).
            fail(CommandFailure(error.message, status: .usage))
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(CommandFailure.Status.usage.rawValue)
            }
            if code == .success || error is ExitCode {
                exit(withError: error)
            }
            fail(CommandFailure(message(for: error), status: .failure))
        }
    }

    private static func fail(_ failure: CommandFailure) -> Never {
        if let output = failure.output { FileHandle.standardOutput.write(Data((output + "\n").utf8)) }
        FileHandle.standardError.write(Data((failure.description + "\n").utf8))
        Foundation.exit(failure.status.rawValue)
    }
}
