import Classification
import DICOM
import Dispatch
import Foundation
import Logging

/// Study triggers: when they fire, the commands they run, what is recorded.
extension WatchAgent {
    // MARK: Study triggers

    func fireTriggers(now: Date) {
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

    func fire(_ trigger: StudyTrigger, rule: FolderRule, study: String, series: [SeriesDecision], attempt: Int, revision: Int) {
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
    static func auditRecord(_ record: TriggerRecord, action: String, reason: String) -> AuditRecord {
        AuditRecord(time: record.time, rule: record.rule, file: record.manifest ?? "", study: record.study, action: action,
                    reason: "trigger \(record.trigger): " + reason)
    }

    /// A series that arrives after a study's triggers fired is in none of their manifests, and one
    /// revised since (a relabel, study context) is there with its old class: say so in the log
    /// and in `triggers.jsonl`, where a pipeline's operator looks for what it was given; a
    /// trigger with `refire: on-new-series` fires again once the study is quiet.
    func recordLateSeries(_ decision: SeriesDecision, study: String, revisedFrom: SequenceClass? = nil) {
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
    func trigger(named name: String, study: String) -> StudyTrigger? {
        studies[study].flatMap { rule(named: $0.rule) }?.triggers.first { $0.name == name }
    }

    /// A trigger command in progress.
    struct RunningTrigger {
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
    func start(_ argv: [String], trigger: StudyTrigger, record: TriggerRecord, manifest: String, log: String) throws(FileSystemError) -> pid_t {
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

    func triggerEnded(_ finished: TriggerRecord) {
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
    func stopOverdueTriggers(now: Date) {
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

    /// Each configured trigger's studies by where they stand, for `mrsort status`.
    func triggerStatus(now: Date) -> [AgentStatus.Trigger] {
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
