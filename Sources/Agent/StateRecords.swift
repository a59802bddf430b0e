#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Classification
import DICOM
import Foundation
import Synchronization

/// An append-only file of JSON lines (audit log, series decisions, triggers, corrections).
/// Each record is one `write` of a whole line to an `O_APPEND` descriptor, fsync'd when `synced`.
public final class JSONLinesLog<Record: Codable & Sendable>: Sendable {
    public let path: String
    private let fd: Mutex<Int32>
    /// Whether each record is fsync'd. The per-file audit log is not (the journal guards the
    /// files; an fsync per file would halve the throughput); decisions and triggers are.
    public let synced: Bool

    public init(path: String, synced: Bool = true) throws(FileSystemError) {
        self.synced = synced
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw FileSystemError(path: path, operation: "open", code: errno) }
        self.path = path
        self.fd = Mutex(fd)
    }

    deinit {
        fd.withLock { _ = close($0) }
    }

    public func append(_ record: Record) throws(FileSystemError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        guard var data = try? encoder.encode(record) else {
            throw FileSystemError(path: path, operation: "encode record", reason: "not encodable")
        }
        data.append(0x0A)
        let failure: FileSystemError? = fd.withLock { fd in
            let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == data.count else { return FileSystemError(path: path, operation: "append", code: errno) }
            guard !synced || fsync(fd) == 0 else { return FileSystemError(path: path, operation: "fsync", code: errno) }
            return nil
        }
        if let failure { throw failure }
    }

    /// Every record that decodes (a line torn by a crash does not, and is skipped).
    public static func read(_ path: String) -> [Record] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let decoder = JSONDecoder.iso8601
        return data.split(separator: 0x0A).compactMap { try? decoder.decode(Record.self, from: Data($0)) }
    }
}

/// One decision about one file, as the audit log keeps it.
public struct AuditRecord: Codable, Sendable, Equatable {
    public var time: Date
    public var rule: String
    public var file: String
    public var study: String?
    public var series: String?
    public var sequence: SequenceClass?
    public var orientation: Orientation?
    public var confidence: Double?
    /// The metadata forest's series vote.
    public var forest: SeriesClassification.ModelVote?
    /// The pixel CNN's series vote (nil without a CNN model).
    public var cnn: SeriesClassification.ModelVote?
    /// What was done: `move`, `copy`, `rewrite`, `review`, `quarantine`, `duplicate`, `error`, `relabel`.
    public var action: String
    /// Where the file is now, when it was written somewhere.
    public var destination: String?
    public var reason: String?
    /// Size and time of the file left at `file` (copy and rewrite keep it), so that a rescan
    /// does not handle it twice.
    public var sourceStamp: FileSystem.Stamp?
}

/// The classification of a handled series, kept so that late files are handled the same way,
/// for study triggers, `mrsort status` and `mrsort relabel`.
public struct SeriesDecision: Codable, Sendable, Equatable {
    public var time: Date
    public var rule: String
    public var classification: SeriesClassification
    /// Folders the series' files went to.
    public var folders: [String]
    /// Set when a person corrected the classification.
    public var correctedBy: String?
    /// Whether the series was routed to review.
    public var review: Bool
    /// The study's folder in the layout: the path up to the component that names the study
    /// (nil where the layout names none, or nothing was delivered).
    public var studyFolder: String?
}

/// A study trigger that fired.
public struct TriggerRecord: Codable, Sendable, Equatable {
    public var time: Date
    public var study: String
    public var trigger: String
    public var rule: String
    public var manifest: String?
    /// The command's exit status (128 + N when signal N ended it), on the line written when it ended.
    public var exitStatus: Int32?
    public var error: String?
    /// The command's process id, on the line written when it started.
    public var pid: Int32?
    /// Its stdout and stderr.
    public var log: String?
    /// Set when the command ran past the trigger's `timeout_seconds` and its process group was stopped.
    public var timedOut: Bool?
    /// Which start of this revision the line belongs to (1 = the first; a retry counts up).
    public var attempt: Int?
    /// Which manifest of the study (1 = the first; `refire: on-new-series` counts up).
    public var revision: Int?
    /// On a failure line: when the trigger starts again (its `retries` allow another start).
    public var retryAt: Date?
    /// On a late-series line: the trigger fires again for the study (`refire: on-new-series`).
    public var refire: Bool?

    /// What a line of `triggers.jsonl` records. Each firing writes `fired`, then `started` and
    /// `ended` when it runs a command, or `failed` when it could not start.
    public enum Event: Sendable, Equatable {
        case fired
        case started
        case ended(exitStatus: Int32)
        case failed
        case interrupted
        /// A series arrived, or was revised, after the trigger fired.
        case lateSeries
    }

    /// The event, read from the fields present (the file has no event field of its own).
    public var event: Event {
        if let error {
            if error.hasPrefix(Self.lateSeriesPrefix) || error.hasPrefix(Self.revisedSeriesPrefix) { return .lateSeries }
            if error.hasPrefix(Self.interruptedPrefix) { return .interrupted }
            return .failed
        }
        if let exitStatus { return .ended(exitStatus: exitStatus) }
        return pid == nil ? .fired : .started
    }

    /// Whether the firing this line ends did not do its job.
    public var isFailure: Bool {
        switch event {
        case .failed, .interrupted: true
        case .ended(let status): status != 0
        case .fired, .started, .lateSeries: false
        }
    }

    static let lateSeriesPrefix = "late series"
    static let revisedSeriesPrefix = "revised series"
    static let interruptedPrefix = "interrupted"
}

/// A correction requested by `mrsort relabel`, picked up by the running agent.
public struct RelabelRequest: Codable, Sendable, Equatable {
    public var series: String
    public var sequence: SequenceClass
    public var orientation: Orientation?
    public var requestedBy: String
    public var time: Date

    public init(series: String, sequence: SequenceClass, orientation: Orientation?, requestedBy: String, time: Date) {
        self.series = series
        self.sequence = sequence
        self.orientation = orientation
        self.requestedBy = requestedBy
        self.time = time
    }
}

/// What `mrsort status` shows: written by the agent every few seconds.
public struct AgentStatus: Codable, Sendable {
    public struct Pending: Codable, Sendable {
        public var study: String
        public var series: String
        public var seriesNumber: Int?
        public var files: Int
        public var quietFor: Double
        public var rule: String
    }

    public struct Counters: Codable, Sendable, Equatable {
        public var filesSeen = 0
        public var seriesClassified = 0
        public var filesDelivered = 0
        public var quarantined = 0
        public var review = 0
        public var triggers = 0
        public var errors = 0
        /// inotify queue overflows, each answered by a full rescan.
        public var overflows = 0
        /// Instances DICOM destinations acknowledged (forward).
        public var forwarded = 0

        public init() {}

        public init(from decoder: Decoder) throws {
            // A status written before forwarding existed has no `forwarded`.
            let container = try decoder.container(keyedBy: CodingKeys.self)
            filesSeen = try container.decode(Int.self, forKey: .filesSeen)
            seriesClassified = try container.decode(Int.self, forKey: .seriesClassified)
            filesDelivered = try container.decode(Int.self, forKey: .filesDelivered)
            quarantined = try container.decode(Int.self, forKey: .quarantined)
            review = try container.decode(Int.self, forKey: .review)
            triggers = try container.decode(Int.self, forKey: .triggers)
            errors = try container.decode(Int.self, forKey: .errors)
            overflows = try container.decode(Int.self, forKey: .overflows)
            forwarded = try container.decodeIfPresent(Int.self, forKey: .forwarded) ?? 0
        }
    }

    /// One DICOM destination's queue and last outcomes.
    public struct Destination: Codable, Sendable {
        public var name: String
        public var address: String
        public var queuedSeries: Int
        public var queuedInstances: Int
        public var sending: Bool
        public var nextAttempt: Date?
        /// Series set aside after their last retry (`<state>/dead-letter/<name>/`).
        public var deadLetters: Int
        public var instancesForwarded: Int
        public var lastSuccess: Date?
        public var lastError: String?
        public var lastErrorTime: Date?
    }

    /// Where one configured study trigger stands across the studies the agent remembers.
    public struct Trigger: Codable, Sendable {
        public var name: String
        public var rule: String
        /// Studies that do not hold the required classes yet.
        public var waitingForClasses: Int
        /// Studies that hold them, waiting for quiet, a file in progress or their turn.
        public var due: Int
        /// Studies whose start failed, with the time of their next start.
        public var retries: [Retry]
        public var running: [Running]

        public struct Retry: Codable, Sendable {
            public var study: String
            public var at: Date
        }

        public struct Running: Codable, Sendable {
            public var study: String
            public var pid: Int32
            public var since: Date
            public var log: String?
        }
    }

    public var pid: Int32
    public var started: Date
    public var updated: Date
    public var pending: [Pending]
    public var recent: [SeriesDecision]
    public var counters: Counters
    /// Nil in a status written before triggers were reported.
    public var triggers: [Trigger]?
    /// Nil in a status written before forwarding existed.
    public var destinations: [Destination]?
}

/// What `mrsort status` shows of a DICOM receiver: written by `mrsort receive` every few seconds.
public struct ReceiverStatus: Codable, Sendable {
    public var name: String
    public var aeTitle: String
    public var port: UInt16
    public var pid: Int32
    public var started: Date
    public var updated: Date
    /// False once the receiver stopped (or could not open its port: see `lastError`).
    public var listening: Bool
    public var counters: StorageReceiver.Counters
    public var lastError: String?

    public init(name: String, aeTitle: String, port: UInt16, pid: Int32, started: Date, updated: Date, listening: Bool,
                counters: StorageReceiver.Counters, lastError: String? = nil) {
        self.name = name
        self.aeTitle = aeTitle
        self.port = port
        self.pid = pid
        self.started = started
        self.updated = updated
        self.listening = listening
        self.counters = counters
        self.lastError = lastError
    }
}

/// The files in the state directory.
public struct StateDirectory: Sendable {
    public let path: String

    public init(_ path: String) {
        self.path = path
    }

    public var journal: String { path + "/journal.jsonl" }
    public var audit: String { path + "/audit.jsonl" }
    public var decisions: String { path + "/series.jsonl" }
    public var triggers: String { path + "/triggers.jsonl" }
    public var corrections: String { path + "/corrections.jsonl" }
    public var status: String { path + "/status.json" }
    public var requests: String { path + "/requests" }
    public var manifests: String { path + "/manifests" }
    /// `<name>.json` per DICOM receiver (`ReceiverStatus`).
    public var receivers: String { path + "/receivers" }
    /// `<destination>/<job>.json` per series waiting to be forwarded.
    public var forwardQueue: String { path + "/forward" }
    /// `<destination>/<job>/`: series whose last send failed, the job and links to its files.
    public var deadLetters: String { path + "/dead-letter" }
}
