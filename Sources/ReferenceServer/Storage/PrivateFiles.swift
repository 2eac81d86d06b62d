import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Creates and tightens what the server keeps on disk: directories 0700, files 0600.
///
/// Modes are given explicitly and then set with `chmod`, so a host's umask (which only removes
/// bits) can neither loosen nor, by being odd, break them. The server runs as one user; nobody
/// else on the machine needs to read its database, secrets or uploaded files.
enum PrivateFiles {
    static let directoryMode: mode_t = 0o700
    static let fileMode: mode_t = 0o600

    /// Creates `path` and any missing parent directories as 0700; an existing `path` is tightened
    /// to 0700. Parents that already exist are left alone: they are not the server's.
    ///
    /// - Returns: Whether an existing directory had wider permissions (and was tightened).
    @discardableResult
    static func createDirectory(atPath path: String) throws -> Bool {
        if let entry = Entry(path) {
            guard entry.type == .typeDirectory else { throw PrivateFileError(errno: ENOTDIR, path: path) }
            return try restrict(path, to: directoryMode, current: entry.mode)
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path, Entry(parent) == nil {
            try createDirectory(atPath: parent)
        }
        if mkdir(path, directoryMode) != 0 && errno != EEXIST {
            throw PrivateFileError(errno: errno, path: path)
        }
        guard chmod(path, directoryMode) == 0 else { throw PrivateFileError(errno: errno, path: path) }
        return false
    }

    /// Creates `path` (which must not exist) as 0600 holding `contents`; `durable`: synced to disk
    /// before this returns.
    static func createFile(atPath path: String, contents: [UInt8], durable: Bool = true) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, fileMode)
        guard descriptor >= 0 else { throw PrivateFileError(errno: errno, path: path) }
        defer { close(descriptor) }
        guard fchmod(descriptor, fileMode) == 0 else { throw PrivateFileError(errno: errno, path: path) }
        var written = 0
        while written < contents.count {
            let count = contents[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw PrivateFileError(errno: errno, path: path)
            }
            written += count
        }
        guard !durable || fsync(descriptor) == 0 else { throw PrivateFileError(errno: errno, path: path) }
    }

    /// Creates an empty 0600 file at `path` unless one exists, and tightens an existing one to 0600.
    /// SQLite creates its database 0644 and gives the `-wal` and `-shm` files the database's mode,
    /// so creating the database file first keeps all three private.
    ///
    /// - Returns: Whether an existing file had wider permissions (and was tightened).
    @discardableResult
    static func prepareFile(atPath path: String) throws -> Bool {
        if let entry = Entry(path) { return try restrict(path, to: fileMode, current: entry.mode) }
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, fileMode)
        guard descriptor >= 0 else { throw PrivateFileError(errno: errno, path: path) }
        defer { close(descriptor) }
        guard fchmod(descriptor, fileMode) == 0 else { throw PrivateFileError(errno: errno, path: path) }
        return false
    }

    /// Tightens every directory under `root` (itself included) to 0700 and every other entry to
    /// 0600, without following symbolic links. For data directories made by versions that left
    /// their contents readable by everyone.
    ///
    /// - Returns: How many entries were tightened.
    @discardableResult
    static func tightenTree(atPath root: String) throws -> Int {
        var tightened = 0
        var pending = [root]
        while let directory = pending.popLast() {
            guard let entry = Entry(directory), entry.type == .typeDirectory else { continue }
            if try restrict(directory, to: directoryMode, current: entry.mode) { tightened += 1 }
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                let path = (directory as NSString).appendingPathComponent(name)
                guard let entry = Entry(path) else { continue }
                switch entry.type {
                case .typeDirectory:
                    pending.append(path)
                case .typeRegular:
                    if try restrict(path, to: fileMode, current: entry.mode) { tightened += 1 }
                default:
                    // Symbolic links and sockets: a chmod would act on what a link points to.
                    continue
                }
            }
        }
        return tightened
    }

    /// Sets `mode` when the entry has another; answers whether it allowed more than `mode`.
    private static func restrict(_ path: String, to mode: mode_t, current: Int) throws -> Bool {
        guard current != Int(mode) else { return false }
        guard chmod(path, mode) == 0 else { throw PrivateFileError(errno: errno, path: path) }
        return current & ~Int(mode) != 0
    }

    /// An entry's type and permission bits, without following a symbolic link.
    private struct Entry {
        var type: FileAttributeType
        var mode: Int

        init?(_ path: String) {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                let type = attributes[.type] as? FileAttributeType,
                let mode = attributes[.posixPermissions] as? Int
            else { return nil }
            self.type = type
            self.mode = mode & 0o7777
        }
    }
}

/// A system call on a path of the data directory failed.
struct PrivateFileError: Error, CustomStringConvertible {
    var path: String
    var code: Int32

    init(errno code: Int32, path: String) {
        self.path = path
        self.code = code
    }

    var description: String { "\(path): \(String(cString: strerror(code)))" }
}
