import Classification
import DICOM
import Dispatch
import Foundation
import Logging

/// Quiescent series: classified in groups on the work queue, their rule carried out, study
/// context revisions and retries.
extension WatchAgent {
    func dispatchQuiescent(now: Date) {
        guard !stopping else { return }
        let quiet = { [configuration] (name: String) in configuration.rules.first { $0.name == name }?.quietSeconds ?? 0 }
        // Files still queued for reading may belong to any series: wait for them.
        guard readQueueHead == readQueue.count, readsInFlight == 0 else { return }
        // Quiescent series go to a worker a group at a time, classified together: short series
        // fill the CNN's batches together (a series of one slice alone costs several times more).
        var group: [Dispatched] = [], slices = 0
        for key in tracker.quiescent(at: now, quietSeconds: quiet) where inFlight[key] == nil {
            guard busyWorkers < configuration.workerThreads else { break }
            guard let series = tracker.take(key), let rule = rule(named: series.rule) else { continue }
            // Files that changed or vanished during the quiet period restart it.
            let changed = series.files.filter { FileSystem.stamp($0.key) != $0.value.stamp }.map(\.key)
            if !changed.isEmpty {
                // Back to pending, every file still counted once; the changed ones are read again.
                for file in series.files.values { tracker.add(file, rule: series.rule, at: now) }
                for path in changed {
                    if FileSystem.stamp(path) == nil { tracker.remove(path) }
                    observe(path, rule: series.rule)
                }
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
    func launch(_ group: [Dispatched]) {
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

    func finish(_ key: SeriesKey, _ result: SeriesHandler.Result?, files: [TrackedFile], model: SeriesClassification?) {
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
        queueForwarding(decision, key: key, files: result.placed, replacing: relabelled)
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
    struct Placement {
        var time: Date
        var files: Set<String>
    }

    /// A later series can change what study context concludes about earlier ones (the later of
    /// two T1 is the post-contrast one; a perfusion marks the bolus). Settles the study again
    /// from the models' answers, as `eval` does for a whole study, and revises every delivered
    /// series whose pre/post class changed: its files are moved (or rewritten) again, audited,
    /// and its study's fired triggers told. A person's correction is never revised.
    func reviseStudy(_ uid: String) {
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
    func scheduleRetry(_ key: SeriesKey, files: [TrackedFile], result: SeriesHandler.Result) {
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

    func retry(_ paths: [String], rule: String, series: String) {
        let remaining = paths.filter { FileSystem.stamp($0) != nil }
        // Someone else took the files away: no later handling of the series would forget its count.
        if remaining.isEmpty { failedAttempts[series] = nil }
        for path in remaining { observe(path, rule: rule) }
    }

    /// A few headers that keep what study context needs: plane, timing, contrast agent.
    static func representative(_ headers: [ImageHeader]) -> [ImageHeader] {
        guard headers.count > 8 else { return headers }
        var picked = stride(from: 0, to: headers.count, by: max(1, headers.count / 7)).map { headers[$0] }
        if let contrast = headers.first(where: \.namesContrastAgent) { picked.append(contrast) }
        return picked
    }

    /// Removes drop-folder subfolders that moves emptied, once each has been empty and untouched
    /// for its rule's quiet time (a sender that made a folder a moment ago may still write into
    /// it), and then their parents the same way, never the watched folder itself. `rmdir` removes
    /// only an empty folder: a file that arrives meanwhile keeps it.
    func removeEmptiedFolders(now: Date) {
        for (folder, quiet) in emptiedFolders {
            guard let modified = FileSystem.modificationTime(folder) else {
                emptiedFolders[folder] = nil
                continue
            }
            guard now.timeIntervalSince1970 - modified >= quiet else { continue }
            emptiedFolders[folder] = nil
            FileSystem.removeEmptyFolders(from: folder, below: configuration.rules.flatMap(\.watch), untouchedFor: quiet)
        }
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
    struct Dispatched: Sendable {
        var key: SeriesKey
        var files: [TrackedFile]
        var handler: SeriesHandler
        var decided: SeriesDecision?
        /// The study's series handled before, as the models classified them (or as a person
        /// corrected them), for pre/post-contrast study context.
        var context: [StudyContext.Series]
    }
}
