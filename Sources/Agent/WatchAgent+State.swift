import Classification
import DICOM
import Dispatch
import Foundation
import Logging

/// The agent's own state: leftovers at start, configuration reloads, decisions restored at
/// start and pruned, the status file.
extension WatchAgent {
    /// Removes what a crash mid-`writeAtomically` left in the agent's own folders (the status file,
    /// manifests, trigger inboxes): hidden temporaries that no one else writes, the lock being held.
    func removeStateLeftovers() {
        let folders = [state.path, state.manifests, state.requests] + configuration.rules.flatMap { $0.triggers.compactMap(\.inbox) }
        for folder in folders {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(AtomicRewrite.temporaryPrefix) {
                try? FileSystem.remove(folder + "/" + name, sync: false)
                logger.notice("removed a temporary left by a crash", metadata: ["file": "\(folder)/\(name)"])
            }
        }
    }

    // MARK: Configuration reload

    func reloadConfiguration() {
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

    func restoreState() {
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
    func prune(before date: Date) {
        decisions = decisions.filter { $0.value.time >= date }
        placements = placements.filter { $0.value.time >= Date().addingTimeInterval(-86_400) }
        studies = studies.filter { $0.value.lastActivity >= date }
        triggerLedger.retain(studies: Set(studies.keys))
        handledFiles = handledFiles.filter { Date(timeIntervalSince1970: $0.value.modified) >= date || FileSystem.stamp($0.key) == $0.value }
    }

    func writeStatus(force: Bool) {
        let now = Date()
        // Rewritten when something changed (at most every 2 s), else once a minute as a heartbeat.
        // What changes a trigger's standing changes these too: a handled series (`recent`), a
        // firing or a failure (the counters), a command's start or end. The per-trigger tally walks
        // every remembered study, so it is made only for a write, not at every tick.
        let signature = "\(counters)|\(tracker.pending.count)|\(tracker.pending.values.map(\.files.count).reduce(0, +))|\(inFlight.count)|\(recent.first?.time ?? .distantPast)"
            + "|\(runningTriggers.count)|\(sending.count)|\(forwardQueue.all.count)"
        let due = signature != lastStatusSignature ? now.timeIntervalSince(lastStatus) >= 2 : now.timeIntervalSince(lastStatus) >= 60
        guard force || due else { return }
        lastStatus = now
        lastStatusSignature = signature
        let triggers = triggerStatus(now: now)
        let pending = tracker.pending.values.map { series in
            AgentStatus.Pending(
                study: series.key.study, series: series.key.series,
                seriesNumber: series.files.values.first?.headers.first?.seriesNumber,
                files: series.files.count, quietFor: now.timeIntervalSince(series.lastChange), rule: series.rule
            )
        }.sorted { $0.quietFor > $1.quietFor }
        let status = AgentStatus(pid: ProcessInfo.processInfo.processIdentifier, started: started, updated: now,
                                 pending: pending, recent: recent, counters: counters, triggers: triggers,
                                 destinations: destinationStatus())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        if let data = try? encoder.encode(status) { try? FileSystem.writeAtomically(data, to: state.status) }
    }
}
