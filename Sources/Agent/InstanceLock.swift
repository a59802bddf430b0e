#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// Keeps a second agent off the state directory and the watched folders while one runs.
///
/// Two agents on the same folders race for the same files, and a starting agent's journal
/// recovery would settle — and truncate — the running agent's open steps; both lose images. An
/// exclusive `flock` is taken on `lock` in the state directory (which also names the holder's
/// pid) and on every watched folder itself, so that agents with different state directories but
/// a shared drop folder exclude each other too. The locks belong to open file descriptions the
/// kernel drops when the process dies, however it dies, so a crash never leaves a stale lock.
/// Descriptors are close-on-exec: trigger commands do not inherit them.
public final class InstanceLock: Sendable {
    private struct Held {
        var state: Int32
        var folders: [String: Int32]
    }

    public let stateDirectory: String
    /// Watched folders whose file system refused `flock` at start-up, with the reason.
    public let unlockable: [(folder: String, reason: String)]
    private let held: Mutex<Held?>

    /// Takes the state directory's lock and each folder's; throws, holding nothing, if another
    /// agent has any of them.
    public init(stateDirectory: String, folders: [String]) throws(FileSystemError) {
        self.stateDirectory = stateDirectory
        let path = stateDirectory + "/lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileSystemError(path: path, operation: "open lock file", code: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            let holder = Self.holder(fd)
            close(fd)
            if code == EWOULDBLOCK {
                throw FileSystemError(path: stateDirectory, operation: "lock state directory",
                                      reason: "another mrsort agent\(holder.map { " (pid \($0))" } ?? "") is running on it; a second instance is refused")
            }
            throw FileSystemError(path: path, operation: "lock", code: code)
        }
        // The pid is for people and for the refusal message; the lock itself is the flock.
        let pid = Data("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        do {
            let (taken, unlockable) = try Self.take(folders, holding: [:])
            self.unlockable = unlockable
            held = Mutex(Held(state: fd, folders: taken))
        } catch {
            close(fd)
            throw error
        }
    }

    deinit {
        release()
    }

    /// Makes the held folder locks exactly `folders` (after a reload): takes the new ones first and
    /// releases the old ones only once all are taken, so that a refused reload changes nothing.
    ///
    /// Returns the folders whose file system has no `flock` (some network mounts), with the
    /// reason: they are watched unlocked, and the state directory's lock is what remains.
    @discardableResult
    public func watch(_ folders: [String]) throws(FileSystemError) -> [(folder: String, reason: String)] {
        let current = held.withLock { $0?.folders ?? [:] }
        let (taken, unlockable) = try Self.take(folders, holding: current)
        // Released meanwhile: nothing is kept.
        let (dropped, kept) = held.withLock { held -> ([String: Int32], [String: Int32]) in
            guard let old = held?.folders else { return (taken, [:]) }
            held?.folders = taken
            return (old, taken)
        }
        Self.closeAll(dropped, except: kept)
        return unlockable
    }

    /// Locks each folder not already in `current` (whose descriptors are reused); on a refusal
    /// closes what it opened and throws.
    private static func take(_ folders: [String], holding current: [String: Int32])
        throws(FileSystemError) -> (taken: [String: Int32], unlockable: [(folder: String, reason: String)]) {
        var unlockable: [(folder: String, reason: String)] = []
        var taken: [String: Int32] = [:]
        for folder in Set(folders).sorted() {
            if let fd = current[folder] {
                taken[folder] = fd
                continue
            }
            let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else {
                let error = FileSystemError(path: folder, operation: "open watched folder", code: errno)
                closeAll(taken, except: current)
                throw error
            }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let code = errno
                close(fd)
                guard code == EWOULDBLOCK else {
                    unlockable.append((folder, String(cString: strerror(code))))
                    continue
                }
                closeAll(taken, except: current)
                throw FileSystemError(path: folder, operation: "lock watched folder",
                                      reason: "another mrsort agent is watching it; a second instance is refused")
            }
            taken[folder] = fd
        }
        return (taken, unlockable)
    }

    /// Releases every lock (at the end of `run()`, or when the agent goes away).
    public func release() {
        let fds = held.withLock { held -> [Int32] in
            defer { held = nil }
            guard let held else { return [] }
            return [held.state] + Array(held.folders.values)
        }
        for fd in fds { close(fd) }
    }

    private static func closeAll(_ descriptors: [String: Int32], except kept: [String: Int32]) {
        for (folder, fd) in descriptors where kept[folder] != fd { close(fd) }
    }

    private static func holder(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Int32(String(decoding: buffer.prefix(count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
