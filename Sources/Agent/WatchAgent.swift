import Classification
import DICOM
import Dispatch
import Foundation
import Logging

/// The long-running agent behind `mrsort watch`: watches the drop folders of every rule, groups
/// files into series, classifies each series once it is quiescent, acts on its files, fires study
/// triggers, and keeps the journal, the audit log and its status in the state directory.
///
/// All state lives in this actor and changes only in `run()`'s event loop; classification and
/// file actions run on worker tasks (at most `worker_threads` at once) that report back as events.
/// The loop and the clock are here; each job has a file of its own: arrivals
/// (`WatchAgent+Arrivals`), quiescent series (`+Series`), study triggers (`+Triggers`),
/// corrections (`+Corrections`), and the agent's own state and status (`+State`).
public actor WatchAgent {
    /// What the event loop reacts to.
    enum Event: Sendable {
        case file(String, rule: Int)
        /// A name in a watched folder that is not UTF-8.
        case misnamed(folder: String, name: [UInt8], rule: Int)
        /// A file's headers were read (or could not be).
        case read(String, rule: String, stamp: FileSystem.Stamp, Result<[ImageHeader], DICOMError>)
        case rescan
        /// The kernel dropped inotify events.
        case overflow
        case tick
        /// A worker finished its series (several, classified together, or one relabelled).
        case handled([HandledSeries])
        /// Files whose action failed (a full or read-only output), due for another try.
        case retry([String], rule: String, series: String)
        /// SIGHUP: read the configuration again.
        case reload
        /// SIGTERM/SIGINT: finish the series in hand, then return from `run()`.
        case stop
        /// A trigger command ended (its end line already written).
        case triggerEnded(TriggerRecord)
        /// A send to a DICOM destination ended.
        case forwarded(ForwardJob, StorageDestination.Report)
    }

    /// Where header reads, classification and file actions run: blocking, CPU- and disk-bound work
    /// that must not occupy Swift's cooperative pool (one thread per core), on which the agent's
    /// own event loop and every other task depend. The agent bounds how much is queued at once.
    static let work = DispatchQueue(label: "mrsort.work", qos: .utility, attributes: .concurrent)

    var configuration: AgentConfiguration
    let configurationPath: String?
    let classifier: SeriesClassifier
    let studyContext: Bool
    let state: StateDirectory
    let journal: Journal
    let delivery: FileDelivery
    let audit: JSONLinesLog<AuditRecord>
    let decisionLog: JSONLinesLog<SeriesDecision>
    let triggerLog: JSONLinesLog<TriggerRecord>
    let correctionLog: JSONLinesLog<RelabelRequest>
    /// Failed tries in a row per series, for the retry back-off.
    var failedAttempts: [String: Int] = [:]
    let notifier: ServiceNotifier
    let logger: Logger

    let events: AsyncStream<Event>
    let continuation: AsyncStream<Event>.Continuation
    var watcher: FolderWatcher?
    /// Held from the start of `run()` to its end: one agent per state directory and folder.
    var lock: InstanceLock?
    /// Series being moved by a relabel: their new folders replace the old ones.
    var relabelling: Set<SeriesKey> = []
    /// Trigger commands running now, by pid.
    var runningTriggers: [pid_t: RunningTrigger] = [:]
    /// Which study triggers fired, and which start again after a failure.
    var triggerLedger = TriggerLedger()
    /// Sorted series waiting for DICOM destinations (on disk), the send in progress per
    /// destination, and what each destination did since the start.
    var forwardQueue: ForwardQueue
    var sending: [String: ForwardJob] = [:]
    var forwardStanding: [String: ForwardStanding] = [:]

    var tracker = SeriesTracker()
    /// Files whose headers are being read, by the stamp they had.
    var reading: [String: FileSystem.Stamp] = [:]
    var readQueue: [(path: String, rule: String, stamp: FileSystem.Stamp)] = []
    var readQueueHead = 0
    var readsInFlight = 0
    var unreadable: [String: Unreadable] = [:]
    var inFlight: [SeriesKey: Set<String>] = [:]
    /// Work items on the work queue (each a group of series, or a relabel): at most `worker_threads`.
    var busyWorkers = 0
    var decisions: [String: SeriesDecision] = [:]
    var studies: [String: StudyState] = [:]
    /// Subfolders of drop folders that series were moved out of, with their rule's quiet time.
    var emptiedFolders: [String: Double] = [:]
    /// Where each series handled in the last day has its files.
    var placements: [String: Placement] = [:]
    /// Files done with that stay where they were (copy, rewrite): their stamp when done.
    var handledFiles: [String: FileSystem.Stamp] = [:]
    var counters = AgentStatus.Counters()
    var recent: [SeriesDecision] = []
    var stopping = false
    let started = Date()
    var lastStatus = Date.distantPast
    var lastStatusSignature = ""
    var lastPrune = Date()
    /// How long decisions are kept in memory for late files and triggers.
    static let retention: TimeInterval = 30 * 86_400
    var lastWatchdog = Date.distantPast

    struct Unreadable {
        var rule: String
        var stamp: FileSystem.Stamp
        var since: Date
        var reason: String
        /// Empty or truncated: perhaps a transfer in progress, given longer before quarantine.
        var incomplete: Bool
        /// The study it belongs to, where its header could be read: a file in progress holds
        /// back its study's triggers.
        var study: String? = nil
    }

    /// How long an unreadable file may stay unchanged before it is taken as broken.
    static func patience(for rule: FolderRule, incomplete: Bool) -> Double {
        incomplete ? rule.incompleteSeconds : rule.quietSeconds
    }

    struct StudyState {
        var rule: String
        var lastActivity: Date
        var series: [String: SeriesDecision] = [:]
        /// Each handled series with a few of its headers, for pre/post-contrast study context.
        var context: [String: StudyContext.Series] = [:]
    }

    /// Prepares the agent: state directory, journal recovery, previous decisions.
    /// - Parameter studyContext: settle pre/post-contrast T1 from the study's earlier series.
    public init(
        configuration: AgentConfiguration, configurationPath: String?, classifier: SeriesClassifier,
        studyContext: Bool = true, logger: Logger, notifier: ServiceNotifier = ServiceNotifier()
    ) throws(FileSystemError) {
        self.configuration = configuration
        self.configurationPath = configurationPath
        self.classifier = classifier
        self.studyContext = studyContext
        self.logger = logger
        self.notifier = notifier
        state = StateDirectory(configuration.stateDirectory)
        try FileSystem.createDirectory(state.path)
        try FileSystem.createDirectory(state.requests)
        try FileSystem.createDirectory(state.manifests)
        journal = try Journal(path: state.journal)
        delivery = FileDelivery(journal: journal)
        audit = try JSONLinesLog(path: state.audit, synced: false)
        decisionLog = try JSONLinesLog(path: state.decisions)
        triggerLog = try JSONLinesLog(path: state.triggers)
        correctionLog = try JSONLinesLog(path: state.corrections)
        forwardQueue = try ForwardQueue(state: state)
        (events, continuation) = AsyncStream.makeStream(of: Event.self)
    }

    /// Finishes the series in hand, then returns from `run()` (SIGTERM).
    public nonisolated func stop() {
        continuation.yield(.stop)
    }

    /// Reads the configuration file again, keeping pending series (SIGHUP).
    public nonisolated func reload() {
        continuation.yield(.reload)
    }

    /// Scans every watched folder now.
    public nonisolated func rescanNow() {
        continuation.yield(.rescan)
    }

    /// Runs until `.stop`: recovers, scans, watches, and reacts to events.
    public func run() async throws(FileSystemError) {
        // Before anything is touched: a second agent must not settle the first one's journal.
        let lock = try InstanceLock(stateDirectory: state.path, folders: configuration.rules.flatMap(\.watch))
        self.lock = lock
        for (folder, reason) in lock.unlockable {
            logger.warning("watched folder cannot be locked; only the state directory keeps a second agent out", metadata: ["folder": "\(folder)", "reason": "\(reason)"])
        }
        defer {
            lock.release()
            self.lock = nil
        }
        removeStateLeftovers()
        for recovery in try journal.recover() {
            logger.notice("journal recovery", metadata: ["step": "\(recovery)"])
            guard recovery.delivered, let destination = recovery.intent.destination else { continue }
            // The step's own audit line may not have been written: without it a copy's source,
            // still in the drop folder, would be handled again.
            let source = recovery.intent.source
            try? audit.append(AuditRecord(time: Date(), rule: "", file: source, action: "recovered " + recovery.intent.operation.rawValue,
                                          destination: destination, reason: recovery.outcome,
                                          sourceStamp: FileSystem.stamp(source).flatMap { $0 == recovery.intent.sourceStamp ? $0 : nil }))
        }
        restoreState()
        for file in forwardQueue.load() {
            logger.error("forwarding job cannot be read; left in place", metadata: ["file": "\(file)"])
        }
        if !forwardQueue.all.isEmpty {
            logger.notice("series waiting to be forwarded", metadata: ["series": "\(forwardQueue.all.count)"])
        }
        try startWatching()
        rescan()
        let ticker = Task { [continuation] in
            while !Task.isCancelled {
                // A quarter second: a quiescent series waits at most this long past its quiet period.
                try? await Task.sleep(nanoseconds: 250_000_000)
                continuation.yield(.tick)
            }
        }
        let rescanner = Task { [continuation, seconds = configuration.rescanSeconds] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                continuation.yield(.rescan)
            }
        }
        defer {
            ticker.cancel()
            rescanner.cancel()
            watcher?.stop()
        }
        for warning in configuration.warnings { logger.warning("configuration: \(warning)") }
        notifier.notify("READY=1\nSTATUS=watching \(configuration.rules.flatMap(\.watch).count) folder(s)")
        logger.info("watching", metadata: ["folders": "\(configuration.rules.flatMap(\.watch))", "state": "\(state.path)"])
        for await event in events {
            switch event {
            case .file(let path, let rule): observe(path, rule: configuration.rules.indices.contains(rule) ? configuration.rules[rule].name : "")
            case .misnamed(let folder, let name, let rule):
                if configuration.rules.indices.contains(rule) { rename(misnamed: name, in: folder, rule: configuration.rules[rule].name) }
            case .read(let path, let rule, let stamp, let result): ingest(path, rule: rule, stamp: stamp, result)
            case .rescan: rescan()
            case .overflow:
                counters.overflows += 1
                logger.warning("inotify queue overflowed; rescanning every watched folder")
                rescan()
            case .retry(let paths, let rule, let series): retry(paths, rule: rule, series: series)
            case .tick: tick(now: Date())
            case .handled(let series):
                busyWorkers -= 1
                for done in series { finish(done.key, done.result, files: done.files, model: done.model) }
                // A worker is free: the next quiescent series starts now, not at the next tick
                // (with short series the tick, not the work, set the pace).
                dispatchQuiescent(now: Date())
            case .reload: reloadConfiguration()
            case .triggerEnded(let record): triggerEnded(record)
            case .forwarded(let job, let report): forwarded(job, report)
            case .stop:
                if !stopping {
                    stopping = true
                    notifier.notify("STOPPING=1")
                    logger.info("stopping: finishing \(inFlight.count) series in hand")
                }
            }
            if stopping && inFlight.isEmpty { break }
        }
        writeStatus(force: true)
        logger.info("stopped", metadata: ["pending series": "\(tracker.pending.count)"])
    }

    // MARK: The clock

    func tick(now: Date) {
        quarantineUnreadable(now: now)
        dispatchQuiescent(now: now)
        fireTriggers(now: now)
        forwardDue(now: now)
        stopOverdueTriggers(now: now)
        applyRelabelRequests()
        removeEmptiedFolders(now: now)
        writeStatus(force: false)
        if now.timeIntervalSince(lastPrune) >= 3600 {
            lastPrune = now
            prune(before: now.addingTimeInterval(-Self.retention))
        }
        if let interval = notifier.watchdogInterval, now.timeIntervalSince(lastWatchdog) >= interval {
            notifier.notify("WATCHDOG=1")
            lastWatchdog = now
        }
    }

    func rule(named name: String) -> FolderRule? {
        configuration.rules.first { $0.name == name }
    }

    func quarantineUnreadable(now: Date) {
        for (path, file) in unreadable {
            guard let rule = rule(named: file.rule) else {
                unreadable[path] = nil
                continue
            }
            guard now.timeIntervalSince(file.since) >= Self.patience(for: rule, incomplete: file.incomplete) else { continue }
            unreadable[path] = nil
            guard let stamp = FileSystem.stamp(path) else { continue }
            if stamp != file.stamp {
                observe(path, rule: file.rule)
                continue
            }
            var record = AuditRecord(time: now, rule: rule.name, file: path, action: "quarantine", reason: file.reason)
            do {
                record.destination = try Quarantine(folder: rule.quarantine, delivery: delivery).isolate(path, reason: file.reason)
                counters.quarantined += 1
                logger.warning("quarantined", metadata: ["file": "\(path)", "reason": "\(file.reason)"])
            } catch {
                record.action = "error"
                record.reason = "cannot quarantine (\(file.reason)): \(error)"
                counters.errors += 1
                logger.error("cannot quarantine", metadata: ["file": "\(path)", "error": "\(error)"])
            }
            try? audit.append(record)
        }
    }

    /// The current counters (for tests and status).
    public func currentCounters() -> AgentStatus.Counters { counters }
}

extension JSONDecoder {
    /// A decoder for the state directory's records (ISO 8601 dates).
    public static var iso8601: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
