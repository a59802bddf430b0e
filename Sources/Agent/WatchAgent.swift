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
    }

    /// Where header reads, classification and file actions run: blocking, CPU- and disk-bound work
    /// that must not occupy Swift's cooperative pool (one thread per core), on which the agent's
    /// own event loop and every other task depend. The agent bounds how much is queued at once.
    private static let work = DispatchQueue(label: "mrsort.work", qos: .utility, attributes: .concurrent)

    private var configuration: AgentConfiguration
    private let configurationPath: String?
    private let classifier: SeriesClassifier
    private let studyContext: Bool
    private let state: StateDirectory
    private let journal: Journal
    private let delivery: FileDelivery
    private let audit: JSONLinesLog<AuditRecord>
    private let decisionLog: JSONLinesLog<SeriesDecision>
    private let triggerLog: JSONLinesLog<TriggerRecord>
    private let correctionLog: JSONLinesLog<RelabelRequest>
    /// Failed tries in a row per series, for the retry back-off.
    private var failedAttempts: [String: Int] = [:]
    private let notifier: ServiceNotifier
    private let logger: Logger

    private let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private var watcher: FolderWatcher?
    /// Held from the start of `run()` to its end: one agent per state directory and folder.
    private var lock: InstanceLock?
    /// Series being moved by a relabel: their new folders replace the old ones.
    private var relabelling: Set<SeriesKey> = []
    /// Trigger commands running now, by pid.
    private var runningTriggers: [pid_t: RunningTrigger] = [:]
    /// Which study triggers fired, and which start again after a failure.
    private var triggerLedger = TriggerLedger()

    private var tracker = SeriesTracker()
    /// Files whose headers are being read, by the stamp they had.
    private var reading: [String: FileSystem.Stamp] = [:]
    private var readQueue: [(path: String, rule: String, stamp: FileSystem.Stamp)] = []
    private var readQueueHead = 0
    private var readsInFlight = 0
    private var unreadable: [String: Unreadable] = [:]
    private var inFlight: [SeriesKey: Set<String>] = [:]
    /// Work items on the work queue (each a group of series, or a relabel): at most `worker_threads`.
    private var busyWorkers = 0
    private var decisions: [String: SeriesDecision] = [:]
    private var studies: [String: StudyState] = [:]
    /// Subfolders of drop folders that series were moved out of, with their rule's quiet time.
    private var emptiedFolders: [String: Double] = [:]
    /// Where each series handled in the last day has its files.
    private var placements: [String: Placement] = [:]
    /// Files done with that stay where they were (copy, rewrite): their stamp when done.
    private var handledFiles: [String: FileSystem.Stamp] = [:]
    private var counters = AgentStatus.Counters()
    private var recent: [SeriesDecision] = []
    private var stopping = false
    private let started = Date()
    private var lastStatus = Date.distantPast
    private var lastStatusSignature = ""
    private var lastPrune = Date()
    /// How long decisions are kept in memory for late files and triggers.
    private static let retention: TimeInterval = 30 * 86_400
    private var lastWatchdog = Date.distantPast

    private struct Unreadable {
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
    private static func patience(for rule: FolderRule, incomplete: Bool) -> Double {
        incomplete ? rule.incompleteSeconds : rule.quietSeconds
    }

    private struct StudyState {
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

    /// Removes what a crash mid-`writeAtomically` left in the agent's own folders (the status file,
    /// manifests, trigger inboxes): hidden temporaries that no one else writes, the lock being held.
    private func removeStateLeftovers() {
        let folders = [state.path, state.manifests, state.requests] + configuration.rules.flatMap { $0.triggers.compactMap(\.inbox) }
        for folder in folders {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(AtomicRewrite.temporaryPrefix) {
                try? FileSystem.remove(folder + "/" + name, sync: false)
                logger.notice("removed a temporary left by a crash", metadata: ["file": "\(folder)/\(name)"])
            }
        }
    }

    // MARK: Arrivals

    private func observe(_ path: String, rule: String) {
        guard !rule.isEmpty, !inFlight.values.contains(where: { $0.contains(path) }), let stamp = FileSystem.stamp(path) else { return }
        if handledFiles[path] == stamp || tracker.isTracked(path, stamp: stamp) { return }
        if let known = unreadable[path], known.stamp == stamp { return }
        if reading[path] == stamp { return }
        reading[path] = stamp
        readQueue.append((path, rule, stamp))
        startReads()
    }

    /// Reads headers on worker tasks, a few at a time: parsing is the costly part of arrival.
    private func startReads() {
        while readsInFlight < max(2, configuration.workerThreads * 2), readQueueHead < readQueue.count {
            let (path, rule, stamp) = readQueue[readQueueHead]
            readQueueHead += 1
            // A queue of thousands (a flood, a rescan) is consumed from the front in O(1).
            if readQueueHead == readQueue.count || readQueueHead > 4096 {
                readQueue.removeFirst(readQueueHead)
                readQueueHead = 0
            }
            readsInFlight += 1
            let continuation = continuation, ceiling = configuration.maximumFrameBytes
            Self.work.async {
                // The whole file, pixel data included, must parse: the header alone arrives first,
                // so a file still being written can look whole to a header-only read. Large values
                // are skipped, not loaded, so this costs about what a header read does.
                let result = Result { () throws(DICOMError) -> [ImageHeader] in
                    try DICOMFile.open(path, headerOnly: false, maximumDecodedFrameBytes: ceiling).imageHeaders()
                }
                continuation.yield(.read(path, rule: rule, stamp: stamp, result))
            }
        }
    }

    /// Gives a file or folder whose name is not UTF-8 (an old archive's Latin-1, a sender's
    /// bytes) a name the agent can write — each non-ASCII byte and `%` as `%XX` — in the same
    /// folder, never replacing anything, audits the rename, and handles the file as any other.
    private func rename(misnamed name: [UInt8], in folder: String, rule: String) {
        let escaped = name.map { $0 < 0x80 && $0 != 0x25 ? String(UnicodeScalar($0)) : String(format: "%%%02X", $0) }.joined()
        let original = Array(folder.utf8) + [0x2F] + name + [0]
        var info = stat()
        guard lstat(original.map { CChar(bitPattern: $0) }, &info) == 0 else { return }
        let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
        guard isDirectory || (info.st_mode & S_IFMT) == S_IFREG else { return }
        var record = AuditRecord(time: Date(), rule: rule, file: folder + "/" + escaped, action: "rename",
                                 reason: "the file name is not valid UTF-8")
        for attempt in 0..<100 {
            let target = attempt == 0 ? folder + "/" + escaped : FileDelivery.numbered(folder + "/" + escaped, attempt)
            let source = original.map { CChar(bitPattern: $0) }
            // A file gets its new name by link, which never replaces; a folder by rename once the
            // name is seen free.
            let done: Bool
            if isDirectory {
                done = !FileSystem.exists(target) && Glibc.rename(source, target) == 0
            } else if link(source, target) == 0 {
                done = unlink(source) == 0 || { _ = unlink(target); return false }()
            } else {
                done = false
                if errno != EEXIST { break }
            }
            guard done else { continue }
            try? FileSystem.syncDirectory(folder)
            record.destination = target
            try? audit.append(record)
            logger.warning("renamed a name that is not UTF-8", metadata: ["folder": "\(folder)", "name": "\(target)"])
            // A new folder is reported by the watcher's move event; a file's link is not.
            if !isDirectory { observe(target, rule: rule) }
            return
        }
        record.action = "error"
        record.reason = "the file name is not valid UTF-8 and it cannot be renamed: \(String(cString: strerror(errno)))"
        counters.errors += 1
        try? audit.append(record)
        logger.error("cannot rename a name that is not UTF-8", metadata: ["folder": "\(folder)", "name": "\(escaped)"])
    }

    private func ingest(_ path: String, rule: String, stamp: FileSystem.Stamp, _ result: Result<[ImageHeader], DICOMError>) {
        readsInFlight -= 1
        if reading[path] == stamp { reading[path] = nil }
        defer {
            startReads()
            // The last read of a burst: series held back for it may start now rather than at the tick.
            if readsInFlight == 0, readQueueHead == readQueue.count { dispatchQuiescent(now: Date()) }
        }
        switch result {
        case .success(let headers) where !headers.isEmpty:
            unreadable[path] = nil
            // A file read again (it changed while its series waited) is still one file.
            if tracker.add(TrackedFile(path: path, stamp: stamp, headers: headers), rule: rule, at: Date()) { counters.filesSeen += 1 }
            studies[headers[0].studyInstanceUID, default: StudyState(rule: rule, lastActivity: Date())].lastActivity = Date()
        case .success:
            unreadable[path] = Unreadable(rule: rule, stamp: stamp, since: Date(), reason: "no image in the file", incomplete: false)
        case .failure(let error):
            // Perhaps still being written: quarantined only if it stays unchanged and unreadable.
            let incomplete: Bool = switch error {
            case .truncated: true
            default: stamp.size == 0
            }
            // The header often arrives whole before the pixel data: it names the study the file will join.
            let study = incomplete ? (try? ImageHeader.read(from: path).first?.studyInstanceUID) ?? nil : nil
            unreadable[path] = Unreadable(rule: rule, stamp: stamp, since: Date(), reason: error.reason, incomplete: incomplete, study: study)
        }
    }

    private func rescan() {
        let folders = watchedFolders()
        for event in FolderWatcher.scan(folders) {
            switch event {
            case .file(let path, let rule): observe(path, rule: configuration.rules[rule].name)
            case .misnamed(let folder, let name, let rule): rename(misnamed: name, in: folder, rule: configuration.rules[rule].name)
            case .overflow: break
            }
        }
    }

    private func watchedFolders() -> [WatchedFolder] {
        configuration.rules.enumerated().flatMap { index, rule in
            rule.watch.map { WatchedFolder(path: $0, recursive: rule.recursive, rule: index) }
        }
    }

    private func startWatching() throws(FileSystemError) {
        watcher?.stop()
        let continuation = continuation
        watcher = try FolderWatcher(folders: watchedFolders()) { event in
            switch event {
            case .file(let path, let rule): continuation.yield(.file(path, rule: rule))
            case .misnamed(let folder, let name, let rule): continuation.yield(.misnamed(folder: folder, name: name, rule: rule))
            case .overflow: continuation.yield(.overflow)
            }
        }
    }

    // MARK: The clock

    private func tick(now: Date) {
        quarantineUnreadable(now: now)
        dispatchQuiescent(now: now)
        fireTriggers(now: now)
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

    private func rule(named name: String) -> FolderRule? {
        configuration.rules.first { $0.name == name }
    }

    private func quarantineUnreadable(now: Date) {
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

    private func dispatchQuiescent(now: Date) {
        guard !stopping else { return }
        let quiet = { [configuration] (name: String) in configuration.rules.first { $0.name == name }?.quietSeconds ?? 0 }
        // Files still queued for reading may belong to any series: wait for them.
        guard readQueueHead == readQueue.count, readsInFlight == 0 else { return }
        // Quiescent series go to a worker a group at a time, classified together: short series
        // fill the CNN's batches together (a series of one slice alone costs several times more).
        var group: [Dispatched] = [], slices = 0
        for key in tracker.quiescent(at: now, quietSeconds: quiet) where inFlight[key] == nil {
            guard busyWorkers < configuration.workerThreads else { break }
            guard var series = tracker.take(key), let rule = rule(named: series.rule) else { continue }
            // Files that changed or vanished during the quiet period restart it.
            let changed = series.files.filter { FileSystem.stamp($0.key) != $0.value.stamp }.map(\.key)
            if !changed.isEmpty {
                for path in changed { series.files[path] = nil }
                for file in series.files.values { tracker.add(file, rule: series.rule, at: now) }
                for path in changed { observe(path, rule: series.rule) }
                continue
            }
            let files = Array(series.files.values)
            inFlight[key] = Set(files.map(\.path))
            var handler = SeriesHandler(rule: rule, delivery: delivery, audit: audit)
            handler.workers = configuration.workerThreads
            let context = studyContext ? (studies[key.study]?.context.values).map(Array.init) ?? [] : []
            group.append(Dispatched(key: key, files: files, handler: handler, decided: decisions[key.series],
                                   context: context.filter { $0.classification.seriesInstanceUID != key.series }))
            slices += min(files.reduce(0) { $0 + $1.headers.count }, classifier.cnnImagesPerSeries)
            if slices >= classifier.cnn?.batchSize ?? 16 || group.count >= SeriesClassifier.seriesPerBatch {
                launch(group)
                group = []
                slices = 0
            }
        }
        if !group.isEmpty { launch(group) }
    }

    /// Classifies a group of series together on a worker, then carries out each one's rule.
    private func launch(_ group: [Dispatched]) {
        busyWorkers += 1
        let classifier = classifier, useContext = studyContext, continuation = continuation
        Self.work.async {
            let classifications = classifier.classify(series: group.map { $0.decided == nil ? $0.files.flatMap(\.headers) : [] })
            // Series of one study in the group see each other.
            var earlier: [String: [StudyContext.Series]] = [:]
            var done: [HandledSeries] = []
            for (series, classification) in zip(group, classifications) {
                let result = series.handler.handle(series.files, decided: series.decided) { headers in
                    guard let classification else { return nil }
                    guard useContext else { return classification }
                    let study = series.context + earlier[series.key.study, default: []]
                    return StudyContext.settle(study + [.init(classification: classification, headers: headers)]).last
                }
                if let classification {
                    earlier[series.key.study, default: []].append(.init(classification: classification,
                                                                        headers: Self.representative(series.files.flatMap(\.headers))))
                }
                done.append(HandledSeries(key: series.key, result: result, files: series.files, model: classification))
            }
            continuation.yield(.handled(done))
        }
    }

    private func finish(_ key: SeriesKey, _ result: SeriesHandler.Result?, files: [TrackedFile], model: SeriesClassification?) {
        inFlight[key] = nil
        guard let result else {
            counters.errors += 1
            logger.error("series without images", metadata: ["series": "\(key.series)"])
            return
        }
        for (path, stamp) in result.handled {
            if let stamp { handledFiles[path] = stamp }
        }
        for (file, reason) in result.incomplete {
            // Handled like the rest of its series once whole (its close event or a rescan brings it back).
            unreadable[file.path] = Unreadable(rule: result.decision.rule, stamp: file.stamp, since: Date(), reason: reason, incomplete: true,
                                               study: key.study)
        }
        let previous = decisions[key.series]
        let first = previous == nil
        let relabelled = relabelling.remove(key) != nil
        var decision = result.decision
        if let previous = decisions[key.series] {
            if relabelled {
                // The files left their old folders: those go if empty, and the series is where it is now.
                if let rule = rule(named: decision.rule) {
                    let roots = [rule.output, rule.review].compactMap { $0 }
                    for folder in Set(previous.folders).subtracting(decision.folders) {
                        FileSystem.removeEmptyFolders(from: folder, below: roots)
                    }
                }
            } else {
                decision.folders = Array(Set(previous.folders).union(decision.folders)).sorted()
                decision.studyFolder = decision.studyFolder ?? previous.studyFolder
            }
        }
        decisions[key.series] = decision
        placements[key.series] = Placement(time: Date(), files: Set(result.placed).union(relabelled ? [] : placements[key.series]?.files ?? []))
        try? decisionLog.append(decision)
        if first { counters.seriesClassified += 1 }
        if decision.review { counters.review += first ? 1 : 0 }
        // A relabel moves files already counted as delivered.
        if !relabelled { counters.filesDelivered += result.delivered }
        if !relabelled, let rule = rule(named: decision.rule), rule.action.delivery == .move {
            // The drop folder's subfolders that the series came in; emptied ones go later.
            for source in result.handled.keys {
                let folder = (source as NSString).deletingLastPathComponent
                if rule.watch.contains(where: { folder.hasPrefix($0 + "/") }) { emptiedFolders[folder] = rule.quietSeconds }
            }
        }
        counters.quarantined += result.quarantined
        counters.errors += result.errors
        recent = Array(([decision] + recent.filter { $0.classification.seriesInstanceUID != key.series }).prefix(20))
        var study = studies[key.study] ?? StudyState(rule: decision.rule, lastActivity: Date())
        if first, !decision.review { recordLateSeries(decision, study: key.study) }
        study.series[key.series] = decision
        // Study context reads the models' answers (a person's correction where there is one), as
        // `eval` does, never its own earlier conclusions.
        if let model {
            study.context[key.series] = StudyContext.Series(classification: model, headers: Self.representative(files.flatMap(\.headers)))
        } else if decision.correctedBy != nil, var corrected = study.context[key.series] {
            corrected.classification = decision.classification
            study.context[key.series] = corrected
        }
        studies[key.study] = study
        let c = decision.classification
        logger.info("series handled", metadata: [
            "series": "\(key.series)", "number": "\(c.seriesNumber.map(String.init) ?? "-")",
            "sequence": "\(c.sequence.rawValue)", "orientation": "\(c.orientation.rawValue)",
            "confidence": "\(String(format: "%.2f", c.confidence))", "files": "\(files.count)",
            "review": "\(decision.review)", "errors": "\(result.errors)",
        ])
        if let reason = result.firstError {
            logger.error("files of the series left in place", metadata: ["series": "\(key.series)", "errors": "\(result.errors)", "first": "\(reason)"])
        }
        scheduleRetry(key, files: files, result: result)
        reviseStudy(key.study)
    }

    /// Where a handled series' files are, kept a day for relabels and revisions (after that
    /// the audit log says).
    private struct Placement {
        var time: Date
        var files: Set<String>
    }

    /// A later series can change what study context concludes about earlier ones (the later of
    /// two T1 is the post-contrast one; a perfusion marks the bolus). Settles the study again
    /// from the models' answers, as `eval` does for a whole study, and revises every delivered
    /// series whose pre/post class changed: its files are moved (or rewritten) again, audited,
    /// and its study's fired triggers told. A person's correction is never revised.
    private func reviseStudy(_ uid: String) {
        guard studyContext, let study = studies[uid], study.context.count > 1 else { return }
        for settled in StudyContext.settle(Array(study.context.values)) {
            let series = settled.seriesInstanceUID
            guard var decision = decisions[series], decision.correctedBy == nil, !decision.review,
                  decision.classification.sequence != settled.sequence,
                  !inFlight.keys.contains(where: { $0.series == series }) else { continue }
            let from = decision.classification.sequence
            decision.classification.sequence = settled.sequence
            decision.classification.rule = settled.rule
            logger.notice("study context revises a delivered series", metadata: [
                "series": "\(series)", "from": "\(from.rawValue)", "to": "\(settled.sequence.rawValue)", "rule": "\(settled.rule ?? "-")",
            ])
            reapply(decision, reason: "study context revised \(from.rawValue) to \(settled.sequence.rawValue): \(settled.rule ?? "")")
        }
    }

    /// Files whose action failed are tried again after 10 s, then twice as long each time, at most
    /// `rescan_seconds` (the periodic rescan would find them then anyway): a freed disk or a
    /// remounted output is used within seconds, a lasting fault is not hammered.
    private func scheduleRetry(_ key: SeriesKey, files: [TrackedFile], result: SeriesHandler.Result) {
        let rule = result.decision.rule
        let drops = configuration.rules.first { $0.name == rule }?.watch ?? []
        // Only files still in a drop folder: a relabel's files in the output are not arrivals.
        let left = files.map(\.path).filter { path in
            result.handled[path] == nil && drops.contains { path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }
        }
        guard result.errors > 0, !left.isEmpty else {
            failedAttempts[key.series] = nil
            return
        }
        let attempt = failedAttempts[key.series, default: 0]
        failedAttempts[key.series] = attempt + 1
        let delay = min(Self.firstRetrySeconds * pow(2, Double(min(attempt, 20))), max(configuration.rescanSeconds, Self.firstRetrySeconds))
        logger.notice("retrying the files left in place", metadata: ["series": "\(key.series)", "files": "\(left.count)", "in seconds": "\(Int(delay))"])
        let continuation = continuation
        Task {
            try? await Task.sleep(nanoseconds: UInt64(delay * 1e9))
            continuation.yield(.retry(left, rule: rule, series: key.series))
        }
    }

    static let firstRetrySeconds = 10.0

    private func retry(_ paths: [String], rule: String, series: String) {
        let remaining = paths.filter { FileSystem.stamp($0) != nil }
        // Someone else took the files away: no later handling of the series would forget its count.
        if remaining.isEmpty { failedAttempts[series] = nil }
        for path in remaining { observe(path, rule: rule) }
    }

    /// A few headers that keep what study context needs: plane, timing, contrast agent.
    private static func representative(_ headers: [ImageHeader]) -> [ImageHeader] {
        guard headers.count > 8 else { return headers }
        var picked = stride(from: 0, to: headers.count, by: max(1, headers.count / 7)).map { headers[$0] }
        if let contrast = headers.first(where: \.namesContrastAgent) { picked.append(contrast) }
        return picked
    }

    /// Removes drop-folder subfolders that moves emptied, once each has been empty and untouched
    /// for its rule's quiet time (a sender that made a folder a moment ago may still write into
    /// it), and then their parents the same way, never the watched folder itself. `rmdir` removes
    /// only an empty folder: a file that arrives meanwhile keeps it.
    private func removeEmptiedFolders(now: Date) {
        for (folder, quiet) in emptiedFolders {
            guard let modified = FileSystem.modificationTime(folder) else {
                emptiedFolders[folder] = nil
                continue
            }
            guard now.timeIntervalSince1970 - modified >= quiet else { continue }
            emptiedFolders[folder] = nil
            guard let root = configuration.rules.flatMap(\.watch).first(where: { folder.hasPrefix($0 + "/") }) else { continue }
            var current = folder
            while current.hasPrefix(root + "/"), let modified = FileSystem.modificationTime(current),
                  now.timeIntervalSince1970 - modified >= quiet, rmdir(current) == 0 {
                current = (current as NSString).deletingLastPathComponent
            }
        }
    }

    // MARK: Study triggers

    private func fireTriggers(now: Date) {
        // A file still being read, or waiting to be whole, may belong to any study of its rule.
        guard readQueueHead == readQueue.count, readsInFlight == 0 else { return }
        for (uid, study) in studies {
            guard let rule = rule(named: study.rule), !rule.triggers.isEmpty else { continue }
            // A series sent to review is not yet what its class says: it satisfies no trigger.
            let classes = Set(study.series.values.filter { !$0.review }.map(\.classification.sequence))
            for trigger in rule.triggers {
                switch triggerLedger.entry(study: uid, trigger: trigger.name).state {
                case .fired: continue
                case .waiting:
                    guard trigger.requires.isSubset(of: classes), now.timeIntervalSince(study.lastActivity) >= trigger.quietSeconds else { continue }
                case .retryAt(let due):
                    guard now >= due else { continue }
                }
                guard !tracker.hasPending(study: uid), !inFlight.keys.contains(where: { $0.study == uid }),
                      !unreadable.values.contains(where: { $0.incomplete && ($0.study == uid || ($0.study == nil && $0.rule == study.rule)) })
                else { continue }
                guard trigger.command == nil || runningTriggers.count < configuration.maximumRunningTriggers else { return }
                let (attempt, revision) = triggerLedger.fire(study: uid, trigger: trigger.name)
                fire(trigger, rule: rule, study: uid, series: study.series.values.filter { !$0.review }, attempt: attempt, revision: revision)
            }
        }
    }

    private func fire(_ trigger: StudyTrigger, rule: FolderRule, study: String, series: [SeriesDecision], attempt: Int, revision: Int) {
        let manifest = StudyManifest(study: study, trigger: trigger.name, rule: rule.name, series: series, revision: revision, attempt: attempt)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        var record = TriggerRecord(time: Date(), study: study, trigger: trigger.name, rule: rule.name, attempt: attempt, revision: revision)
        do {
            let data = (try? encoder.encode(manifest)) ?? Data()
            // A UID is at most 64 characters; a longer (hostile) one would make too long a name.
            let studyName = study.count <= 64 ? PathTemplate.safeComponent(PathTemplate.sanitise(study)) : PathTemplate.key(study)
            let base = state.manifests + "/" + String(PathTemplate.safeComponent(PathTemplate.sanitise(trigger.name)).prefix(64)) + "-" + studyName
            let path = base + ".json"
            try FileSystem.writeAtomically(data, to: path)
            record.manifest = path
            if let inbox = trigger.inbox {
                try FileSystem.createDirectory(inbox)
                try FileSystem.writeAtomically(data, to: inbox + "/" + studyName + ".json")
            }
            // Recorded before the command starts, so that it fires once per study even if the
            // agent stops meanwhile, and the record of its end comes after.
            try triggerLog.append(record)
            var pid: Int32?
            if let command = trigger.command {
                pid = try start(command + [manifest.folder ?? "", path], trigger: trigger, record: record, manifest: path, log: base + ".log")
            }
            counters.triggers += 1
            try? audit.append(Self.auditRecord(record, action: "trigger", reason: "revision \(revision), attempt \(attempt): "
                + (pid.map { "command started, pid \($0), log \(base).log" } ?? "manifest written") + (trigger.inbox.map { ", inbox \($0)" } ?? "")))
            logger.notice("study trigger fired", metadata: ["study": "\(study)", "trigger": "\(trigger.name)", "revision": "\(revision)", "attempt": "\(attempt)"])
        } catch {
            record.error = "\(error)"
            record.retryAt = triggerLedger.fail(study: study, policy: trigger, attempt: attempt, revision: revision, at: record.time)
            counters.errors += 1
            logger.error("study trigger failed", metadata: ["study": "\(study)", "trigger": "\(trigger.name)", "error": "\(error)",
                                                         "retry at": "\(record.retryAt.map { "\($0)" } ?? "never")"])
            try? triggerLog.append(record)
            try? audit.append(Self.auditRecord(record, action: "trigger failed", reason: "\(error)"))
        }
    }

    /// A study trigger's line in the audit log, beside the files' lines.
    private static func auditRecord(_ record: TriggerRecord, action: String, reason: String) -> AuditRecord {
        AuditRecord(time: record.time, rule: record.rule, file: record.manifest ?? "", study: record.study, action: action,
                    reason: "trigger \(record.trigger): " + reason)
    }

    /// A series that arrives after a study's triggers fired is in none of their manifests, and one
    /// revised since (a relabel, study context) is there with its old class: say so in the log
    /// and in `triggers.jsonl`, where a pipeline's operator looks for what it was given; a
    /// trigger with `refire: on-new-series` fires again once the study is quiet.
    private func recordLateSeries(_ decision: SeriesDecision, study: String, revisedFrom: SequenceClass? = nil) {
        let c = decision.classification
        for name in triggerLedger.fired(study: study) {
            let policy = trigger(named: name, study: study)
            let refire = policy.map { triggerLedger.lateSeries(study: study, policy: $0) } ?? false
            let what = revisedFrom.map { "\(TriggerRecord.revisedSeriesPrefix) \(c.seriesInstanceUID) (\($0.rawValue) → \(c.sequence.rawValue)" }
                ?? "\(TriggerRecord.lateSeriesPrefix) \(c.seriesInstanceUID) (\(c.sequence.rawValue)"
            let reason = what + ", number \(c.seriesNumber.map(String.init) ?? "-")) " + (revisedFrom == nil ? "arrived" : "was revised")
                + " after the trigger fired; " + (refire ? "the trigger fires again with it once the study is quiet"
                    : revisedFrom == nil ? "it is not in its manifest" : "its manifest has the old class")
            try? triggerLog.append(TriggerRecord(time: Date(), study: study, trigger: name, rule: decision.rule, error: reason, refire: refire ? true : nil))
            logger.warning(revisedFrom == nil ? "series arrived after a study trigger fired" : "series revised after a study trigger fired", metadata: [
                "study": "\(study)", "trigger": "\(name)", "series": "\(c.seriesInstanceUID)", "sequence": "\(c.sequence.rawValue)",
                "fires again": "\(refire)",
            ])
        }
    }

    /// The trigger as configured now for the study's rule (nil: rule or trigger gone).
    private func trigger(named name: String, study: String) -> StudyTrigger? {
        studies[study].flatMap { rule(named: $0.rule) }?.triggers.first { $0.name == name }
    }

    /// One series a worker finished with, and the files it was given.
    struct HandledSeries: Sendable {
        var key: SeriesKey
        var result: SeriesHandler.Result?
        var files: [TrackedFile]
        /// The models' classification before study context settled it (nil: not classified now).
        var model: SeriesClassification? = nil
    }

    /// A series taken for a worker, with what its handling needs from the agent's state.
    private struct Dispatched: Sendable {
        var key: SeriesKey
        var files: [TrackedFile]
        var handler: SeriesHandler
        var decided: SeriesDecision?
        /// The study's series handled before, as the models classified them (or as a person
        /// corrected them), for pre/post-contrast study context.
        var context: [StudyContext.Series]
    }

    /// A trigger command in progress.
    private struct RunningTrigger {
        var process: PipelineProcess
        var record: TriggerRecord
        var deadline: Date
        /// SIGTERM at the deadline; SIGKILL follows ten seconds later.
        let stop: PipelineStop
        let log: String
        let maximumLogBytes: Int
    }

    /// Starts a trigger's command (argv, no shell) without waiting: a pipeline may run for hours
    /// while the agent goes on. A thread of its own waits for it; its exit status is recorded in a
    /// second line when it ends.
    @discardableResult
    private func start(_ argv: [String], trigger: StudyTrigger, record: TriggerRecord, manifest: String, log: String) throws(FileSystemError) -> pid_t {
        var environment = ProcessInfo.processInfo.environment
        // systemd's hand-over to the agent is the agent's alone: a pipeline that talks to the notify
        // socket would speak for the service.
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
            environment[name] = nil
        }
        environment["MRSORT_STUDY_UID"] = record.study
        environment["MRSORT_TRIGGER"] = record.trigger
        environment["MRSORT_MANIFEST"] = manifest
        let process = try PipelineProcess.start(argv, environment: environment, log: log)
        var started = record
        started.time = Date()
        started.pid = process.pid
        started.log = log
        // A second line once it runs, so that a restart can tell a command that was running.
        try? triggerLog.append(started)
        let running = RunningTrigger(process: process, record: started, deadline: Date().addingTimeInterval(trigger.timeoutSeconds),
                                     stop: PipelineStop(), log: log, maximumLogBytes: trigger.maximumLogBytes)
        runningTriggers[process.pid] = running
        let continuation = continuation, triggerLog = triggerLog, audit = audit, stop = running.stop, record = started
        let retries = trigger.retries, retrySeconds = trigger.retrySeconds, maximumLogBytes = trigger.maximumLogBytes
        // The end is recorded by this thread, so that it is recorded also when the agent's event
        // loop has ended meanwhile (while the process lives).
        let waiter = Thread {
            let status = process.wait()
            // Output written since the last tick's check.
            PipelineProcess.capLog(log, at: maximumLogBytes)
            var finished = record
            finished.time = Date()
            finished.exitStatus = status
            if stop.sent != nil { finished.timedOut = true }
            // The same rule as the ledger's: another start while the trigger's retries allow one.
            if finished.isFailure, (finished.attempt ?? 1) <= retries { finished.retryAt = finished.time.addingTimeInterval(retrySeconds) }
            try? triggerLog.append(finished)
            try? audit.append(Self.auditRecord(finished, action: "trigger ended",
                                               reason: "exit \(status)" + (finished.timedOut == true ? " (timed out)" : "") + ", log \(log)"))
            continuation.yield(.triggerEnded(finished))
        }
        waiter.name = "mrsort-trigger-\(process.pid)"
        waiter.start()
        return process.pid
    }

    private func triggerEnded(_ finished: TriggerRecord) {
        if let pid = finished.pid { runningTriggers[pid] = nil }
        if finished.isFailure {
            if let policy = trigger(named: finished.trigger, study: finished.study) {
                _ = triggerLedger.fail(study: finished.study, policy: policy, attempt: finished.attempt, revision: finished.revision, at: finished.time)
            }
            counters.errors += 1
            logger.error("study trigger command failed", metadata: ["study": "\(finished.study)", "trigger": "\(finished.trigger)",
                                                                "status": "\(finished.exitStatus ?? -1)", "timed out": "\(finished.timedOut == true)",
                                                                "log": "\(finished.log ?? "")", "retry at": "\(finished.retryAt.map { "\($0)" } ?? "never")"])
        }
    }

    /// Stops commands past their trigger's timeout: SIGTERM to the process group, SIGKILL ten
    /// seconds later if it is still there.
    private func stopOverdueTriggers(now: Date) {
        for (pid, running) in runningTriggers {
            PipelineProcess.capLog(running.log, at: running.maximumLogBytes)
            if let terminated = running.stop.sent {
                if now.timeIntervalSince(terminated) >= 10 { running.process.signalGroup(SIGKILL) }
            } else if now >= running.deadline {
                logger.error("study trigger command timed out; stopping it", metadata: ["study": "\(running.record.study)",
                                                                                      "trigger": "\(running.record.trigger)", "pid": "\(pid)"])
                running.stop.mark(now)
                running.process.signalGroup(SIGTERM)
            }
        }
    }

    // MARK: Corrections

    private func applyRelabelRequests() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: state.requests) else { return }
        for name in names.sorted() where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let path = state.requests + "/" + name
            guard let data = FileManager.default.contents(atPath: path),
                  let request = try? JSONDecoder.iso8601.decode(RelabelRequest.self, from: data) else {
                logger.error("unreadable relabel request", metadata: ["file": "\(path)"])
                try? FileSystem.remove(path)
                continue
            }
            // A series being handled right now is relabelled once it is done.
            guard !inFlight.keys.contains(where: { $0.series == request.series }) else { continue }
            try? FileSystem.remove(path)
            relabel(request)
        }
    }

    private func relabel(_ request: RelabelRequest) {
        guard var decision = decisions[request.series] else {
            logger.error("relabel: unknown series", metadata: ["series": "\(request.series)"])
            return
        }
        try? correctionLog.append(request)
        decision.classification.sequence = request.sequence
        if let orientation = request.orientation { decision.classification.orientation = orientation }
        decision.classification.confidence = 1
        decision.classification.rule = "corrected by \(request.requestedBy)"
        decision.correctedBy = request.requestedBy
        decision.review = false
        logger.notice("relabelling series", metadata: ["series": "\(request.series)", "sequence": "\(request.sequence.rawValue)"])
        reapply(decision, reason: "corrected by \(request.requestedBy)")
    }

    /// Applies a handled series' rule again with a changed decision, to its files where they are
    /// now: files in the output are moved within it (a copy rule's sources stay untouched).
    private func reapply(_ changed: SeriesDecision, reason: String) {
        var decision = changed
        let series = decision.classification.seriesInstanceUID
        guard let rule = rule(named: decision.rule) else { return }
        let paths: Set<String>
        if let placement = placements[series] {
            paths = placement.files
        } else {
            var places: [String: String] = [:]
            for record in JSONLinesLog<AuditRecord>.read(state.audit) where record.series == series {
                guard let destination = record.destination, !["error", "quarantine", "duplicate"].contains(record.action) else { continue }
                places[record.file] = destination
            }
            paths = Set(places.values)
        }
        var files: [TrackedFile] = []
        for path in paths.sorted() {
            guard let stamp = FileSystem.stamp(path), let headers = try? ImageHeader.read(from: path) else { continue }
            files.append(TrackedFile(path: path, stamp: stamp, headers: headers))
        }
        let key = SeriesKey(study: decision.classification.studyInstanceUID, series: series)
        try? audit.append(AuditRecord(time: Date(), rule: rule.name, file: "", study: key.study, series: series,
                                      sequence: decision.classification.sequence, orientation: decision.classification.orientation,
                                      confidence: decision.classification.confidence, action: "relabel", reason: reason))
        if let before = decisions[series]?.classification.sequence, before != decision.classification.sequence, !decision.review {
            recordLateSeries(decision, study: key.study, revisedFrom: before)
        }
        decisions[series] = decision
        var moving = rule
        if moving.action.delivery == .copy { moving.action.delivery = .move }
        let handler = SeriesHandler(rule: moving, delivery: delivery, audit: audit)
        decision.folders = []
        // Off the loop like any series: moving many files must not hold up the watchdog.
        inFlight[key] = Set(files.map(\.path))
        relabelling.insert(key)
        busyWorkers += 1
        let continuation = continuation, decided = decision, placed = files
        Self.work.async {
            let result = handler.handle(placed, decided: decided) { _ in nil }
            continuation.yield(.handled([HandledSeries(key: key, result: result, files: placed)]))
        }
    }

    // MARK: Configuration reload

    private func reloadConfiguration() {
        guard let path = configurationPath else { return }
        do {
            let updated = try AgentConfiguration.load(contentsOf: path)
            guard updated.stateDirectory == configuration.stateDirectory else {
                logger.error("reload refused: state_directory cannot change while running; restart the service")
                return
            }
            for (folder, reason) in try lock?.watch(updated.rules.flatMap(\.watch)) ?? [] {
                logger.warning("watched folder cannot be locked", metadata: ["folder": "\(folder)", "reason": "\(reason)"])
            }
            configuration = updated
            for dropped in tracker.retain(rules: Set(updated.rules.map(\.name))) {
                logger.warning("rule removed; pending series left in place", metadata: ["series": "\(dropped.key.series)"])
            }
            try startWatching()
            rescan()
            logger.notice("configuration reloaded", metadata: ["rules": "\(updated.rules.map(\.name))"])
        } catch {
            logger.error("reload failed; keeping the running configuration", metadata: ["error": "\(error)"])
        }
        notifier.notify("READY=1")
    }

    // MARK: State

    private func restoreState() {
        for decision in JSONLinesLog<SeriesDecision>.read(state.decisions) {
            let c = decision.classification
            decisions[c.seriesInstanceUID] = decision
            var study = studies[c.studyInstanceUID] ?? StudyState(rule: decision.rule, lastActivity: decision.time)
            study.series[c.seriesInstanceUID] = decision
            study.lastActivity = max(study.lastActivity, decision.time)
            studies[c.studyInstanceUID] = study
        }
        var records = JSONLinesLog<TriggerRecord>.read(state.triggers)
        var unfinished: [Int32: TriggerRecord] = [:]
        // Firings of a command whose start was not recorded: the agent stopped in between.
        var unstarted: [String: TriggerRecord] = [:]
        for record in records {
            let firing = record.study + "\u{0}" + record.trigger
            switch record.event {
            case .fired: unstarted[firing] = trigger(named: record.trigger, study: record.study)?.command == nil ? nil : record
            case .started, .failed: unstarted[firing] = nil
            default: break
            }
            guard let pid = record.pid else { continue }
            if record.event == .started { unfinished[pid] = record } else { unfinished[pid] = nil }
        }
        // Commands that were running when the previous agent stopped: their end was not seen.
        for var record in (Array(unfinished.values) + Array(unstarted.values)).sorted(by: { $0.time < $1.time }) {
            record.time = Date()
            record.error = "\(TriggerRecord.interruptedPrefix): " + (record.pid.map { "the agent stopped while the command ran (pid \($0))" }
                ?? "the agent stopped as the command was being started") + "; its outcome is unknown"
            if let policy = trigger(named: record.trigger, study: record.study), (record.attempt ?? 1) <= policy.retries {
                record.retryAt = record.time.addingTimeInterval(policy.retrySeconds)
            }
            try? triggerLog.append(record)
            records.append(record)
            logger.warning("study trigger command's outcome unknown", metadata: ["study": "\(record.study)", "trigger": "\(record.trigger)",
                                                                             "log": "\(record.log ?? "")", "retry at": "\(record.retryAt.map { "\($0)" } ?? "never")"])
        }
        triggerLedger.replay(records) { study, name in trigger(named: name, study: study) }
        for record in JSONLinesLog<AuditRecord>.read(state.audit) {
            if let stamp = record.sourceStamp, FileSystem.stamp(record.file) == stamp { handledFiles[record.file] = stamp }
        }
        recent = Array(decisions.values.sorted { $0.time > $1.time }.prefix(20))
        prune(before: Date().addingTimeInterval(-Self.retention))
    }

    /// Forgets series and studies last touched before `date`, so memory stays bounded over months;
    /// their records stay in the state files.
    private func prune(before date: Date) {
        decisions = decisions.filter { $0.value.time >= date }
        placements = placements.filter { $0.value.time >= Date().addingTimeInterval(-86_400) }
        studies = studies.filter { $0.value.lastActivity >= date }
        triggerLedger.retain(studies: Set(studies.keys))
        handledFiles = handledFiles.filter { Date(timeIntervalSince1970: $0.value.modified) >= date || FileSystem.stamp($0.key) == $0.value }
    }

    private func writeStatus(force: Bool) {
        let now = Date()
        // Rewritten when something changed (at most every 2 s), else once a minute as a heartbeat.
        let triggers = triggerStatus(now: now)
        let signature = "\(counters)|\(tracker.pending.count)|\(tracker.pending.values.map(\.files.count).reduce(0, +))|\(inFlight.count)|\(recent.first?.time ?? .distantPast)"
            + "|" + triggers.map { "\($0.waitingForClasses),\($0.due),\($0.retries.count),\($0.running.count)" }.joined(separator: ";")
        let due = signature != lastStatusSignature ? now.timeIntervalSince(lastStatus) >= 2 : now.timeIntervalSince(lastStatus) >= 60
        guard force || due else { return }
        lastStatus = now
        lastStatusSignature = signature
        let pending = tracker.pending.values.map { series in
            AgentStatus.Pending(
                study: series.key.study, series: series.key.series,
                seriesNumber: series.files.values.first?.headers.first?.seriesNumber,
                files: series.files.count, quietFor: now.timeIntervalSince(series.lastChange), rule: series.rule
            )
        }.sorted { $0.quietFor > $1.quietFor }
        let status = AgentStatus(pid: ProcessInfo.processInfo.processIdentifier, started: started, updated: now,
                                 pending: pending, recent: recent, counters: counters, triggers: triggers)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        if let data = try? encoder.encode(status) { try? FileSystem.writeAtomically(data, to: state.status) }
    }

    /// Each configured trigger's studies by where they stand, for `mrsort status`.
    private func triggerStatus(now: Date) -> [AgentStatus.Trigger] {
        configuration.rules.flatMap { rule in
            rule.triggers.map { trigger in
                var status = AgentStatus.Trigger(name: trigger.name, rule: rule.name, waitingForClasses: 0, due: 0, retries: [], running: [])
                for (uid, study) in studies where study.rule == rule.name {
                    switch triggerLedger.entry(study: uid, trigger: trigger.name).state {
                    case .fired: continue
                    case .retryAt(let at): status.retries.append(.init(study: uid, at: at))
                    case .waiting:
                        let classes = Set(study.series.values.filter { !$0.review }.map(\.classification.sequence))
                        if trigger.requires.isSubset(of: classes) { status.due += 1 } else { status.waitingForClasses += 1 }
                    }
                }
                status.running = runningTriggers.values.filter { $0.record.trigger == trigger.name && $0.record.rule == rule.name }
                    .map { .init(study: $0.record.study, pid: $0.process.pid, since: $0.record.time, log: $0.record.log) }
                    .sorted { $0.since < $1.since }
                status.retries.sort { $0.at < $1.at }
                return status
            }
        }
    }

    /// The current counters (for tests and status).
    public func currentCounters() -> AgentStatus.Counters { counters }
}

/// What a study trigger hands to a pipeline.
public struct StudyManifest: Codable, Sendable {
    public var study: String
    public var trigger: String
    public var rule: String
    /// 1 for the study's first manifest; one more each time a late series makes the trigger
    /// fire again (`refire: on-new-series`).
    public var revision: Int
    /// 1 for the first start of this revision; one more for each retry after a failure.
    public var attempt: Int
    /// The folder that holds the study's sorted series (their common parent), when there is one.
    public var folder: String?
    public var series: [Entry]

    public struct Entry: Codable, Sendable {
        public var series: String
        public var seriesNumber: Int?
        public var seriesDescription: String?
        public var sequence: SequenceClass
        public var orientation: Orientation
        public var confidence: Double
        public var folders: [String]
    }

    init(study: String, trigger: String, rule: String, series: [SeriesDecision], revision: Int, attempt: Int) {
        self.study = study
        self.trigger = trigger
        self.rule = rule
        self.revision = revision
        self.attempt = attempt
        self.series = series.sorted { ($0.classification.seriesNumber ?? 0) < ($1.classification.seriesNumber ?? 0) }.map {
            Entry(series: $0.classification.seriesInstanceUID, seriesNumber: $0.classification.seriesNumber,
                  seriesDescription: $0.classification.seriesDescription, sequence: $0.classification.sequence,
                  orientation: $0.classification.orientation, confidence: $0.classification.confidence, folders: $0.folders)
        }
        // The layout's study folder; where the layout names no study, the series folders' common parent.
        let studyFolders = Set(series.compactMap(\.studyFolder))
        folder = studyFolders.count == 1 ? studyFolders.first : Self.commonFolder(series.flatMap(\.folders))
    }

    static func commonFolder(_ folders: [String]) -> String? {
        guard var common = folders.first?.split(separator: "/", omittingEmptySubsequences: true) else { return nil }
        for folder in folders.dropFirst() {
            let parts = folder.split(separator: "/", omittingEmptySubsequences: true)
            common = Array(zip(common, parts).prefix { $0 == $1 }.map(\.0))
        }
        return "/" + common.joined(separator: "/")
    }
}

extension JSONDecoder {
    static var iso8601: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
