import Foundation
import Testing

@testable import PyAirtableModels

@Suite struct UserDirectoriesTests {
    @Test func homeComesFromTheEnvironment() {
        #expect(UserDirectories.home(environment: ["HOME": "/srv/someone"]) == "/srv/someone")
    }

    @Test func anEmptyOrMissingHomeFallsBackToThePasswordDatabase() {
        let fallback = UserDirectories.home(environment: [:])
        #expect(!fallback.isEmpty)
        #expect(UserDirectories.home(environment: ["HOME": ""]) == fallback)
    }

    @Test func xdgVariablesWinOverHome() {
        let environment = ["HOME": "/h", "XDG_CACHE_HOME": "/c", "XDG_CONFIG_HOME": "/k"]
        #expect(UserDirectories.cacheHome(environment: environment) == "/c")
        #expect(UserDirectories.configHome(environment: environment) == "/k")
    }

    @Test func withoutXDGVariablesTheDirectoriesAreUnderHome() {
        let environment = ["HOME": "/h"]
        #expect(UserDirectories.cacheHome(environment: environment) == "/h/.cache")
        #expect(UserDirectories.configHome(environment: environment) == "/h/.config")
    }

    @Test func relativeOrEmptyXDGVariablesAreIgnored() {
        let environment = ["HOME": "/h", "XDG_CACHE_HOME": "relative/cache", "XDG_CONFIG_HOME": ""]
        #expect(UserDirectories.cacheHome(environment: environment) == "/h/.cache")
        #expect(UserDirectories.configHome(environment: environment) == "/h/.config")
    }
}
