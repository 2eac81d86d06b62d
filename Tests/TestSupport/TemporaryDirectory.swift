import Foundation

/// A throwaway directory, removed with everything in it when the value goes away.
///
/// Every test target makes its data directories, cache files and queue files here, so a run leaves
/// nothing behind and no two tests share a path.
package final class TemporaryDirectory: Sendable {
    /// The directory's absolute path.
    package let path: String

    /// Creates a new, empty directory under the system's temporary directory.
    ///
    /// - Parameter prefix: the start of the directory's name, to tell runs apart when one is kept.
    package init(prefix: String = "pyat-tests") throws {
        path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// The path of `name` inside the directory.
    package func file(_ name: String) -> String {
        path + "/" + name
    }

    /// The file URL of `name` inside the directory.
    package func url(_ name: String) -> URL {
        URL(fileURLWithPath: path).appendingPathComponent(name)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
