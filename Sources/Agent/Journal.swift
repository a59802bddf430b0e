#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DICOM
import Foundation
import Synchronization

/// The write-ahead journal: every step that changes a file is recorded, and synced, before it is
/// taken, and marked done after; a restart finishes or rolls back whatever was half done.
///
/// An append-only file of JSON lines rather than SQLite: the agent has a single writer, the
/// records are small and sequential, and recovery only needs the open intents. An fsync per record
/// makes each line durable before its step runs; a line torn by a crash is the last one and is
/// ignored (its step had not started). No dependency beyond the C library is needed.
public final class Journal: Sendable {
    /// One recorded step.
    public struct Intent: Codable, Sendable, Equatable {
        public enum Operation: String, Codable, Sendable {
            /// Copy (or link) `source` to `destination`, through `temporary`, optionally rewriting.
            case copy
            /// As copy, then remove `source`.
            case move
            /// Rewrite `source` in place (through a hidden temporary beside it).
            case rewrite
        }

        public var id: UInt64
        public var operation: Operation
        public var source: String
        public var destination: String?
        public var temporary: String?
    }

    private struct Line: Codable {
        var id: UInt64
        var intent: Intent?
        var done: Bool?
    }

    /// What a restart did about one unfinished step.
    public struct Recovery: Sendable, Equatable, CustomStringConvertible {
        public var intent: Intent
        public var outcome: String
        public var description: String { "\(intent.operation.rawValue) \(intent.source) → \(intent.destination ?? "in place"): \(outcome)" }
    }

    public let path: String
    private let state: Mutex<(fd: Int32, next: UInt64)>

    /// Opens (creating) the journal at `path`. Call `recover()` before taking new steps.
    public init(path: String) throws(FileSystemError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw FileSystemError(path: path, operation: "open journal", code: errno) }
        self.path = path
        self.state = Mutex((fd, 1))
        let highest = Self.lines(at: path).map(\.id).max() ?? 0
        state.withLock { $0.next = highest + 1 }
    }

    deinit {
        state.withLock { _ = close($0.fd) }
    }

    /// Records an intent and returns it with its id; durably unless `sync` is false, in which
    /// case `sync()` must run before the step's effects become irreversible (group commit).
    public func begin(_ operation: Intent.Operation, source: String, destination: String? = nil, temporary: String? = nil,
                      sync: Bool = true) throws(FileSystemError) -> Intent {
        let result: Result<Intent, FileSystemError> = state.withLock { state in
            let intent = Intent(id: state.next, operation: operation, source: source, destination: destination, temporary: temporary)
            state.next += 1
            return Self.append(Line(id: intent.id, intent: intent), to: state.fd, path: path, sync: sync).map { intent }
        }
        return try result.get()
    }

    /// Makes every line written so far durable.
    public func sync() throws(FileSystemError) {
        let failed = state.withLock { fsync($0.fd) != 0 }
        if failed { throw FileSystemError(path: path, operation: "fsync journal", code: errno) }
    }

    /// Marks an intent finished (or abandoned with nothing changed). Not synced: an intent whose
    /// mark a crash loses is examined again at recovery, which finds it complete.
    public func finish(_ intent: Intent) throws(FileSystemError) {
        let result: Result<Void, FileSystemError> = state.withLock { state in
            Self.append(Line(id: intent.id, done: true), to: state.fd, path: path, sync: false)
        }
        try result.get()
    }

    /// The intents without a done mark.
    public func openIntents() -> [Intent] {
        var open: [UInt64: Intent] = [:]
        var order: [UInt64] = []
        for line in Self.lines(at: path) {
            if let intent = line.intent {
                open[line.id] = intent
                order.append(line.id)
            } else if line.done == true {
                open[line.id] = nil
            }
        }
        return order.compactMap { open[$0] }
    }

    /// Finishes or rolls back every open intent, then starts the journal afresh.
    ///
    /// A copy or move whose destination exists is finished (a move's source is removed once the
    /// destination holds the same bytes, or the same file); one whose destination is missing is
    /// rolled back (its temporary removed, its source untouched, to be handled again). A rewrite's
    /// temporary files are removed; the original is either old or new, never partial.
    public func recover() throws(FileSystemError) -> [Recovery] {
        var recoveries: [Recovery] = []
        for intent in openIntents() {
            recoveries.append(Recovery(intent: intent, outcome: try Self.recover(intent)))
        }
        try state.withLock { state throws(FileSystemError) in
            // Start afresh: everything in the old journal is settled.
            guard ftruncate(state.fd, 0) == 0, fsync(state.fd) == 0 else {
                throw FileSystemError(path: path, operation: "truncate journal", code: errno)
            }
        }
        return recoveries
    }

    private static func recover(_ intent: Intent) throws(FileSystemError) -> String {
        switch intent.operation {
        case .rewrite:
            let removed = try removeRewriteLeftovers(of: intent.source)
            return removed == 0 ? "nothing to undo" : "removed \(removed) temporary file(s); original intact"
        case .copy, .move:
            guard let destination = intent.destination else { return "no destination recorded" }
            if let temporary = intent.temporary {
                // The copy, and the rewrite's own temporary when the copy was being rewritten.
                if FileSystem.exists(temporary) { try FileSystem.remove(temporary) }
                _ = try removeRewriteLeftovers(of: temporary)
            }
            let sourceExists = FileSystem.exists(intent.source)
            guard FileSystem.exists(destination) else {
                return sourceExists ? "rolled back; source untouched" : "source and destination missing"
            }
            guard intent.operation == .move, sourceExists else { return "already complete" }
            // The destination is complete (it only appears by an atomic link); remove the source.
            try FileSystem.remove(intent.source)
            return "finished; source removed"
        }
    }

    /// Removes what an interrupted `AtomicRewrite` of `path` left beside it; returns how many.
    private static func removeRewriteLeftovers(of path: String) throws(FileSystemError) -> Int {
        let directory = (path as NSString).deletingLastPathComponent
        let prefix = AtomicRewrite.temporaryPrefix + (path as NSString).lastPathComponent + "."
        let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix(prefix) }
        for name in leftovers { try FileSystem.remove(directory + "/" + name) }
        return leftovers.count
    }

    private static func append(_ line: Line, to fd: Int32, path: String, sync: Bool = true) -> Result<Void, FileSystemError> {
        guard var data = try? JSONEncoder().encode(line) else {
            return .failure(FileSystemError(path: path, operation: "encode journal line", reason: "not encodable"))
        }
        data.append(0x0A)
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == data.count else {
            return .failure(FileSystemError(path: path, operation: "append to journal", code: errno))
        }
        guard !sync || fsync(fd) == 0 else { return .failure(FileSystemError(path: path, operation: "fsync journal", code: errno)) }
        return .success(())
    }

    private static func lines(at path: String) -> [Line] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let decoder = JSONDecoder()
        // A torn last line (crash mid-append) does not decode and is skipped.
        return data.split(separator: 0x0A).compactMap { try? decoder.decode(Line.self, from: Data($0)) }
    }
}
