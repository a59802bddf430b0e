#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DICOM
import Foundation

/// A file-system step that failed, naming the path and the system's reason.
public struct FileSystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var reason: String
    /// errno, where a system call failed.
    public var code: Int32

    public init(path: String, operation: String, code: Int32) {
        self.path = path
        self.operation = operation
        self.code = code
        self.reason = String(cString: strerror(code))
    }

    public init(path: String, operation: String, reason: String) {
        self.path = path
        self.operation = operation
        self.code = 0
        self.reason = reason
    }

    public var description: String { "\(path): \(operation) failed: \(reason)" }
}

/// The few durable file-system steps the agent is built from. Every write is fsync'd and so is the
/// directory that names it, so that what the journal says happened has happened on disk.
public enum FileSystem {
    /// Size and modification time, which tell whether a file is still being written.
    public struct Stamp: Sendable, Equatable, Codable {
        public var size: Int64
        public var modified: Double
        public var inode: UInt64
        public var device: UInt64
    }

    /// Whether two paths name one directory entry (however spelt: `.`, `..`, symbolic links in the
    /// folders), as opposed to two names of one inode, which an interrupted move leaves.
    public static func isSameEntry(_ a: String, _ b: String) -> Bool {
        let (first, second) = (a as NSString, b as NSString)
        guard first.lastPathComponent == second.lastPathComponent,
              let folderA = realpath(first.deletingLastPathComponent, nil) else { return false }
        defer { free(folderA) }
        guard let folderB = realpath(second.deletingLastPathComponent, nil) else { return false }
        defer { free(folderB) }
        return strcmp(folderA, folderB) == 0
    }

    public static func stamp(_ path: String) -> Stamp? {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Stamp(
            size: Int64(info.st_size),
            modified: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9,
            inode: UInt64(info.st_ino), device: UInt64(info.st_dev)
        )
    }

    /// When `path` (a folder too) last changed, in seconds since 1970; nil when it is not there.
    public static func modificationTime(_ path: String) -> Double? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
    }

    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Creates `path` and its missing parents (mode 0755), syncing each parent that gained an entry.
    public static func createDirectory(_ path: String) throws(FileSystemError) {
        if isDirectory(path) { return }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path { try createDirectory(parent) }
        if mkdir(path, 0o755) != 0, errno != EEXIST {
            throw FileSystemError(path: path, operation: "mkdir", code: errno)
        }
        try syncDirectory(parent)
    }

    public static func syncDirectory(_ path: String) throws(FileSystemError) {
        let fd = open(path.isEmpty ? "." : path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw FileSystemError(path: path, operation: "open directory", code: errno) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw FileSystemError(path: path, operation: "fsync directory", code: errno) }
    }

    /// Writes `data` to `path` under a temporary name, syncs, and renames it into place, so that
    /// readers see the old file or the new one, never a part.
    public static func writeAtomically(_ data: Data, to path: String, mode: mode_t = 0o644) throws(FileSystemError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = AtomicRewrite.temporaryPath(for: path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileSystemError(path: temporary, operation: "create", code: errno) }
        var failure: FileSystemError?
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = FileSystemError(path: temporary, operation: "write", code: errno)
                    return
                }
                offset += written
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = FileSystemError(path: temporary, operation: "fsync", code: errno) }
        close(fd)
        if let failure {
            unlink(temporary)
            throw failure
        }
        guard rename(temporary, path) == 0 else {
            let error = FileSystemError(path: path, operation: "rename", code: errno)
            unlink(temporary)
            throw error
        }
        try syncDirectory(directory)
    }

    /// Copies `source` to `destination` (which must not exist), syncs it, and checks that the copy
    /// reads back byte for byte.
    public static func copyVerified(_ source: String, to destination: String) throws(FileSystemError) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FileSystemError(path: source, operation: "open", code: errno) }
        defer { close(input) }
        var info = stat()
        fstat(input, &info)
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, info.st_mode & 0o777)
        guard output >= 0 else { throw FileSystemError(path: destination, operation: "create", code: errno) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var failure: FileSystemError?
        copying: while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                failure = FileSystemError(path: source, operation: "read", code: errno)
                break
            }
            if count == 0 { break }
            var offset = 0
            while offset < count {
                let written = buffer.withUnsafeBytes { write(output, $0.baseAddress! + offset, count - offset) }
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = FileSystemError(path: destination, operation: "write", code: errno)
                    break copying
                }
                offset += written
            }
        }
        if failure == nil, fsync(output) != 0 { failure = FileSystemError(path: destination, operation: "fsync", code: errno) }
        if close(output) != 0, failure == nil { failure = FileSystemError(path: destination, operation: "close", code: errno) }
        if failure == nil, !(try sameContent(source, destination)) {
            failure = FileSystemError(path: destination, operation: "verify", reason: "the copy differs from \(source)")
        }
        if let failure {
            unlink(destination)
            throw failure
        }
    }

    /// Whether two files hold the same bytes.
    public static func sameContent(_ first: String, _ second: String) throws(FileSystemError) -> Bool {
        guard let a = stamp(first) else { throw FileSystemError(path: first, operation: "stat", code: errno) }
        guard let b = stamp(second) else { throw FileSystemError(path: second, operation: "stat", code: errno) }
        if a.device == b.device && a.inode == b.inode { return true }
        guard a.size == b.size else { return false }
        guard let one = FileHandle(forReadingAtPath: first) else { throw FileSystemError(path: first, operation: "open", code: errno) }
        guard let two = FileHandle(forReadingAtPath: second) else { throw FileSystemError(path: second, operation: "open", code: errno) }
        defer {
            try? one.close()
            try? two.close()
        }
        while true {
            let x = one.readData(ofLength: 1 << 20)
            let y = two.readData(ofLength: 1 << 20)
            if x != y { return false }
            if x.isEmpty { return true }
        }
    }

    /// Removes `folder` if it is empty, then each parent that this leaves empty, up to (not
    /// including) whichever of `roots` it lies below; nothing outside the roots is touched. With
    /// `untouchedFor`, a folder changed more recently than that many seconds ago stays (a sender
    /// that has just made it may still write into it).
    public static func removeEmptyFolders(from folder: String, below roots: [String], untouchedFor seconds: Double = 0) {
        let trimmed = roots.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        guard let root = trimmed.first(where: { folder.hasPrefix($0 + "/") }) else { return }
        let now = Date().timeIntervalSince1970
        var current = folder
        while current.hasPrefix(root + "/"), seconds <= 0 || modificationTime(current).map({ now - $0 >= seconds }) == true,
              rmdir(current) == 0 {
            current = (current as NSString).deletingLastPathComponent
        }
        try? syncDirectory(current)
    }

    /// Removes a file, and syncs its directory unless `sync` is false (a removal that a crash may
    /// undo without harm: the journal or a rescan finds the file again).
    public static func remove(_ path: String, sync: Bool = true) throws(FileSystemError) {
        guard unlink(path) == 0 else { throw FileSystemError(path: path, operation: "unlink", code: errno) }
        if sync { try syncDirectory((path as NSString).deletingLastPathComponent) }
    }
}
