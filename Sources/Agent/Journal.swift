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
        /// The source as it was when the step began: recovery removes a move's source only if it
        /// is unchanged since (absent in journals written before it was recorded).
        public var sourceStamp: FileSystem.Stamp?
        /// Whether the destination is a rewritten copy, so that its bytes differ from the source's.
        public var rewritten: Bool?
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
        /// A copy or move whose destination is complete: the file is delivered there.
        public var delivered: Bool
        public var description: String { "\(intent.operation.rawValue) \(intent.source) → \(intent.destination ?? "in place"): \(outcome)" }
    }

    public let path: String
    /// Lines appended after which the journal is rewritten with its open intents only, so that it
    /// stays small however long the agent runs (and a restart reads little).
    public let compactionThreshold: Int
    private struct State {
        var fd: Int32
        var next: UInt64
        /// The intents begun and not yet finished, in order.
        var open: [UInt64: Intent] = [:]
        var lines = 0
    }
    private let state: Mutex<State>

    /// Opens (creating) the journal at `path`. Call `recover()` before taking new steps.
    public init(path: String, compactionThreshold: Int = 20_000) throws(FileSystemError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw FileSystemError(path: path, operation: "open journal", code: errno) }
        self.path = path
        self.compactionThreshold = max(1, compactionThreshold)
        let lines = Self.lines(at: path)
        self.state = Mutex(State(fd: fd, next: (lines.map(\.id).max() ?? 0) + 1, lines: lines.count))
    }

    deinit {
        state.withLock { _ = close($0.fd) }
    }

    /// Records an intent and returns it with its id; durably unless `sync` is false, in which
    /// case `sync()` must run before the step's effects become irreversible (group commit).
    public func begin(_ operation: Intent.Operation, source: String, destination: String? = nil, temporary: String? = nil,
                      rewritten: Bool = false, sync: Bool = true) throws(FileSystemError) -> Intent {
        let stamp = FileSystem.stamp(source)
        let result: Result<Intent, FileSystemError> = state.withLock { state in
            let intent = Intent(id: state.next, operation: operation, source: source, destination: destination, temporary: temporary,
                                sourceStamp: stamp, rewritten: rewritten ? true : nil)
            state.next += 1
            return Self.append(Line(id: intent.id, intent: intent), to: state.fd, path: path, sync: sync).map {
                state.open[intent.id] = intent
                state.lines += 1
                return intent
            }
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
            Self.append(Line(id: intent.id, done: true), to: state.fd, path: path, sync: false).flatMap {
                state.open[intent.id] = nil
                state.lines += 1
                return state.lines >= compactionThreshold ? compact(&state) : .success(())
            }
        }
        try result.get()
    }

    /// Replaces the journal by one that holds only the open intents: written beside it, synced,
    /// renamed over it. A crash at any point leaves the old journal or the new one, and both
    /// hold every open intent, so recovery sees the same steps.
    private func compact(_ state: inout State) -> Result<Void, FileSystemError> {
        let temporary = AtomicRewrite.temporaryPath(for: path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return .failure(FileSystemError(path: temporary, operation: "create compacted journal", code: errno)) }
        for id in state.open.keys.sorted() {
            guard let intent = state.open[id] else { continue }
            if case .failure(let error) = Self.append(Line(id: id, intent: intent), to: fd, path: temporary, sync: false) {
                close(fd)
                unlink(temporary)
                return .failure(error)
            }
        }
        guard fsync(fd) == 0, rename(temporary, path) == 0 else {
            let error = FileSystemError(path: path, operation: "replace with compacted journal", code: errno)
            close(fd)
            unlink(temporary)
            return .failure(error)
        }
        do {
            try FileSystem.syncDirectory((path as NSString).deletingLastPathComponent)
        } catch {
            // The rename happened; only its durability is in doubt, and the old journal says the same.
        }
        close(state.fd)
        state.fd = fd
        state.lines = state.open.count
        return .success(())
    }

    /// How many lines the journal file holds now (for tests and status).
    public var lineCount: Int { state.withLock { $0.lines } }

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

    /// Finishes or rolls back every open intent, then starts the journal afresh. Only the agent
    /// that holds the state directory's `InstanceLock` may call it: it settles every open step.
    ///
    /// A copy or move whose destination exists is finished; one whose destination is missing is
    /// rolled back (its temporary removed, its source untouched, to be handled again). A move's
    /// source is removed only when it is unchanged since the step began and the destination holds
    /// the same bytes (or is the same file; for a rewritten copy, which differs by design, the
    /// unchanged source suffices, since the copy was verified before it was rewritten); otherwise
    /// both are kept and the outcome says why. A copy's source is never touched. A rewrite's
    /// temporary files are removed; the original is either old or new, never partial.
    public func recover() throws(FileSystemError) -> [Recovery] {
        var recoveries: [Recovery] = []
        for intent in openIntents() {
            let outcome = try Self.recover(intent)
            let delivered = intent.operation != .rewrite && intent.destination.map(FileSystem.exists) == true
            recoveries.append(Recovery(intent: intent, outcome: outcome, delivered: delivered))
        }
        try state.withLock { state throws(FileSystemError) in
            // Start afresh: everything in the old journal is settled.
            guard ftruncate(state.fd, 0) == 0, fsync(state.fd) == 0 else {
                throw FileSystemError(path: path, operation: "truncate journal", code: errno)
            }
            state.open = [:]
            state.lines = 0
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
            // The destination is complete (it only appears by an atomic link); the source goes
            // only if it is what was delivered.
            if let recorded = intent.sourceStamp, FileSystem.stamp(intent.source) != recorded {
                return "source changed since the move began; both kept"
            }
            if intent.rewritten != true, !((try? FileSystem.sameContent(intent.source, destination)) ?? false) {
                return "destination differs from the source; both kept"
            }
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
