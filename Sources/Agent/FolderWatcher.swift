#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DICOM
import Foundation
import Synchronization

/// A folder tree watched for one rule.
public struct WatchedFolder: Sendable, Equatable {
    public var path: String
    public var recursive: Bool
    /// Index of the rule in the configuration.
    public var rule: Int

    public init(path: String, recursive: Bool, rule: Int) {
        self.path = path
        self.recursive = recursive
        self.rule = rule
    }
}

/// Watches drop folders with inotify and reports files that are complete: closed after writing
/// (`IN_CLOSE_WRITE`) or renamed into place (`IN_MOVED_TO`). New subfolders of a recursive folder
/// are watched at once and scanned, since files may land in them before the watch exists. A queue
/// overflow is reported so that the caller rescans. Hidden and partial names (`.*`, `*.part`,
/// `*.partial`, `*.tmp`) are never reported; their final rename is.
public final class FolderWatcher: Sendable {
    public enum Event: Sendable, Equatable {
        case file(String, rule: Int)
        /// A file or folder whose name is not valid UTF-8, which no `String` path can name: its
        /// folder and the name's bytes.
        case misnamed(folder: String, name: [UInt8], rule: Int)
        /// The kernel dropped events: every folder must be rescanned.
        case overflow
    }

    private struct Watches {
        var byDescriptor: [Int32: WatchedFolder] = [:]
        var stopped = false
    }

    private let fd: Int32
    private let watches = Mutex(Watches())
    private let handler: @Sendable (Event) -> Void

    /// Starts watching `folders`; events go to `handler` on the watcher's own thread.
    public init(folders: [WatchedFolder], handler: @escaping @Sendable (Event) -> Void) throws(FileSystemError) {
        let fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw FileSystemError(path: "inotify", operation: "inotify_init1", code: errno) }
        self.fd = fd
        self.handler = handler
        for folder in folders {
            try add(folder, scan: false)
        }
        let thread = Thread { [self] in self.readLoop() }
        thread.name = "mrsort-inotify"
        thread.start()
    }

    /// Stops the thread and closes the descriptor (within half a second).
    public func stop() {
        watches.withLock { $0.stopped = true }
    }

    /// Every file now under the folders (for the start-up scan and periodic rescans), as
    /// `.file` events, and every name that is not UTF-8 as `.misnamed`.
    public static func scan(_ folders: [WatchedFolder]) -> [Event] {
        var result: [Event] = []
        for folder in folders {
            walk(folder.path, recursive: folder.recursive, rule: folder.rule) { result.append($0) }
        }
        return result
    }

    private static func walk(_ directory: String, recursive: Bool, rule: Int, _ visit: (Event) -> Void) {
        var names: [String] = []
        for name in entries(of: directory) {
            guard let text = String(validating: name, as: UTF8.self) else {
                visit(.misnamed(folder: directory, name: name, rule: rule))
                continue
            }
            if !DICOMFileDiscovery.isIgnored(name: text) { names.append(text) }
        }
        for name in names.sorted() {
            let path = directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFREG: visit(.file(path, rule: rule))
            case S_IFDIR where recursive: walk(path, recursive: true, rule: rule, visit)
            default: continue
            }
        }
    }

    /// The names in a folder as the kernel holds them: bytes, not necessarily UTF-8.
    static func entries(of directory: String) -> [[UInt8]] {
        guard let stream = opendir(directory) else { return [] }
        defer { closedir(stream) }
        var names: [[UInt8]] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name != [0x2E], name != [0x2E, 0x2E] { names.append(name) }
        }
        return names
    }

    private func add(_ folder: WatchedFolder, scan: Bool) throws(FileSystemError) {
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
        let descriptor = inotify_add_watch(fd, folder.path, mask)
        guard descriptor >= 0 else { throw FileSystemError(path: folder.path, operation: "inotify_add_watch", code: errno) }
        watches.withLock { $0.byDescriptor[descriptor] = folder }
        guard folder.recursive else { return }
        var names: [String] = []
        for bytes in Self.entries(of: folder.path) {
            if let name = String(validating: bytes, as: UTF8.self) {
                names.append(name)
            } else if scan {
                handler(.misnamed(folder: folder.path, name: bytes, rule: folder.rule))
            }
        }
        for name in names.sorted() where !name.hasPrefix(".") {
            let path = folder.path + "/" + name
            if FileSystem.isDirectory(path) {
                try? add(WatchedFolder(path: path, recursive: true, rule: folder.rule), scan: scan)
            } else if scan, !DICOMFileDiscovery.isIgnored(name: name), FileSystem.stamp(path) != nil {
                handler(.file(path, rule: folder.rule))
            }
        }
    }

    private func readLoop() {
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !watches.withLock({ $0.stopped }) {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 500) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { continue }
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= count {
                let (event, name) = buffer.withUnsafeBytes { raw -> (inotify_event, [UInt8]) in
                    let event = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    let start = offset + MemoryLayout<inotify_event>.size
                    return (event, Array(raw[start..<min(start + Int(event.len), count)].prefix { $0 != 0 }))
                }
                offset += MemoryLayout<inotify_event>.size + Int(event.len)
                handle(event, name: name)
            }
        }
    }

    private func handle(_ event: inotify_event, name bytes: [UInt8]) {
        let mask = Int32(bitPattern: event.mask)
        if mask & Int32(IN_Q_OVERFLOW) != 0 {
            handler(.overflow)
            return
        }
        if mask & Int32(IN_IGNORED) != 0 {
            _ = watches.withLock { $0.byDescriptor.removeValue(forKey: event.wd) }
            return
        }
        guard let folder = watches.withLock({ $0.byDescriptor[event.wd] }), !bytes.isEmpty else { return }
        guard let name = String(validating: bytes, as: UTF8.self) else {
            if mask & Int32(IN_CLOSE_WRITE | IN_MOVED_TO) != 0 || (mask & Int32(IN_ISDIR) != 0 && mask & Int32(IN_CREATE) != 0) {
                handler(.misnamed(folder: folder.path, name: bytes, rule: folder.rule))
            }
            return
        }
        let path = folder.path + "/" + name
        if mask & Int32(IN_ISDIR) != 0 {
            // A new or moved-in subfolder: watch it, then report what is already inside.
            if folder.recursive, mask & Int32(IN_CREATE | IN_MOVED_TO) != 0, !name.hasPrefix(".") {
                try? add(WatchedFolder(path: path, recursive: true, rule: folder.rule), scan: true)
            }
            return
        }
        guard !DICOMFileDiscovery.isIgnored(name: name) else { return }
        if mask & Int32(IN_CLOSE_WRITE | IN_MOVED_TO) != 0 {
            handler(.file(path, rule: folder.rule))
        } else if mask & Int32(IN_CREATE) != 0, let stamp = FileSystem.stamp(path), stamp.size > 0 {
            // A hard link (`ln`, `cp -l`, rsync --link-dest) makes a whole file with IN_CREATE
            // alone: no write, so no IN_CLOSE_WRITE follows. A file being written is usually
            // still empty here; one that is not is read, found incomplete and read again at its close.
            handler(.file(path, rule: folder.rule))
        }
    }
}
