import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The per-user directories of the XDG Base Directory specification, decided by the environment.
///
/// `NSHomeDirectory()` on Linux reads the password database and ignores `$HOME`, so a user (or a test)
/// who sets `HOME` would still get files written under the account's home. Here `$HOME` wins, and the
/// password database is only the fallback when `HOME` is unset or empty.
package enum UserDirectories {
    /// `$HOME`, or the account's home directory from the password database.
    package static func home(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = environment["HOME"], !home.isEmpty { return home }
        if let entry = getpwuid(getuid()), let directory = entry.pointee.pw_dir {
            let path = String(cString: directory)
            if !path.isEmpty { return path }
        }
        return NSTemporaryDirectory()
    }

    /// `$XDG_CACHE_HOME`, or `$HOME/.cache`.
    package static func cacheHome(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        xdg("XDG_CACHE_HOME", fallback: ".cache", environment: environment)
    }

    /// `$XDG_CONFIG_HOME`, or `$HOME/.config`.
    package static func configHome(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        xdg("XDG_CONFIG_HOME", fallback: ".config", environment: environment)
    }

    /// The specification says a relative path in an XDG variable is invalid and must be ignored.
    private static func xdg(_ name: String, fallback: String, environment: [String: String]) -> String {
        if let value = environment[name], value.hasPrefix("/") { return value }
        return (home(environment: environment) as NSString).appendingPathComponent(fallback)
    }
}
