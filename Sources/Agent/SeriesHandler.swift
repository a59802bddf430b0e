import Classification
import DICOM
import Dispatch
import Foundation
import Synchronization

/// One file of a series as the tracker saw it.
public struct TrackedFile: Sendable {
    public var path: String
    public var stamp: FileSystem.Stamp
    /// One header per frame.
    public var headers: [ImageHeader]
}

/// Carries out a rule for one quiescent series: classification (unless the series was already
/// decided), then the rule's action for every file, each step journaled, each file audited.
struct SeriesHandler: Sendable {
    let rule: FolderRule
    let delivery: FileDelivery
    let audit: JSONLinesLog<AuditRecord>
    /// Files of the series handled at the same time.
    var workers = 1

    /// What became of the series.
    struct Result: Sendable {
        var decision: SeriesDecision
        /// Files written somewhere or otherwise done with (no rescan should handle them again).
        var handled: [String: FileSystem.Stamp?]
        /// Files that changed since they were read (a writer came back): left in place, read again.
        var incomplete: [(file: TrackedFile, reason: String)] = []
        var delivered = 0
        var quarantined = 0
        var errors = 0
        /// The first error's reason, for the log line.
        var firstError: String?
        /// Where the series' files are now (output, review, or in place for a rewrite), for a
        /// later relabel or study-context revision.
        var placed: [String] = []
    }

    /// - Parameters:
    ///   - decided: the classification of a series handled before (late files), else nil.
    ///   - classify: the classifier, applied to all headers of the series when `decided` is nil.
    func handle(_ files: [TrackedFile], decided: SeriesDecision?, classify: ([ImageHeader]) -> SeriesClassification?) -> Result? {
        let headers = files.flatMap(\.headers)
        guard let classification = decided?.classification ?? classify(headers) else { return nil }
        let review = decided?.review ?? classification.needsReview(minimumConfidence: rule.minimumConfidence)
        var result = Result(
            decision: SeriesDecision(time: Date(), rule: rule.name, classification: classification, folders: decided?.folders ?? [],
                                     correctedBy: decided?.correctedBy, review: review),
            handled: [:]
        )
        // Files are independent: chunks of the series go through the rule on parallel workers.
        let sorted = files.sorted(by: { $0.path < $1.path })
        let chunks = Self.chunks(sorted, count: workers)
        let partial = Mutex<[Partial]>([])
        DispatchQueue.concurrentPerform(iterations: chunks.count) { index in
            let done = act(on: chunks[index], classification: classification, review: review)
            partial.withLock { $0.append(done) }
        }
        var folders = Set(result.decision.folders)
        if !review, let output = rule.output, rule.action.delivery != nil, let header = headers.first {
            let values = TemplateValues(header: header, sequence: classification.sequence, orientation: classification.orientation,
                                        confidence: classification.confidence)
            result.decision.studyFolder = rule.layout.folder(through: [.studyKey, .studyInstanceUID], values).map { output + "/" + $0 }
        }
        for done in partial.withLock({ $0 }) {
            folders.formUnion(done.folders)
            result.handled.merge(done.handled) { $1 }
            result.incomplete += done.incomplete
            result.delivered += done.delivered
            result.quarantined += done.quarantined
            result.errors += done.errors
            result.firstError = result.firstError ?? done.firstError
            result.placed += done.placed
        }
        result.decision.folders = folders.sorted()
        if review, let folder = result.decision.folders.first {
            writeReviewNote(result.decision, into: folder)
        }
        return result
    }

    /// What one worker did with its share of the files.
    private struct Partial: Sendable {
        var folders = Set<String>()
        var handled: [String: FileSystem.Stamp?] = [:]
        var incomplete: [(file: TrackedFile, reason: String)] = []
        var delivered = 0
        var quarantined = 0
        var errors = 0
        var firstError: String?
        var placed: [String] = []
    }

    static func chunks(_ files: [TrackedFile], count: Int) -> [ArraySlice<TrackedFile>] {
        let size = max(1, (files.count + max(1, count) - 1) / max(1, count))
        return stride(from: 0, to: files.count, by: size).map { files[$0..<min($0 + size, files.count)] }
    }

    private func act(on files: ArraySlice<TrackedFile>, classification: SeriesClassification, review: Bool) -> Partial {
        var result = Partial()
        let batch = DeliveryBatch()
        // Audit lines of a batch are written once it is committed, when they are true.
        var records: [String: AuditRecord] = [:]
        func commit() {
            do {
                for (source, reason) in try delivery.commit(batch) {
                    guard var record = records[source] else { continue }
                    record.action = "error"
                    record.reason = reason
                    record.destination = nil
                    records[source] = record
                    result.delivered -= 1
                    result.errors += 1
                    result.handled[source] = nil
                    result.firstError = result.firstError ?? reason
                }
            } catch {
                // The intents stay open; recovery at the next start finishes them.
                result.errors += 1
                result.firstError = result.firstError ?? error.description
            }
            for (path, var record) in records {
                if record.action != "error", result.handled[path] != nil {
                    // A copy or a rewrite keeps the file at its source: remember it, so that a rescan
                    // does not handle it twice.
                    record.sourceStamp = FileSystem.stamp(path)
                    result.handled[path] = .some(record.sourceStamp)
                }
                if record.action != "error", record.action != "quarantine", record.action != "duplicate", let destination = record.destination {
                    result.placed.append(destination)
                }
                try? audit.append(record)
            }
            records.removeAll()
            do {
                try delivery.settle(batch)
            } catch {
                result.errors += 1
                result.firstError = result.firstError ?? error.description
            }
        }
        for file in files {
            if batch.count >= 64 { commit() }
            guard let header = file.headers.first else { continue }
            // Changed since it was read (a writer came back): read again before acting.
            guard FileSystem.stamp(file.path) == file.stamp else {
                result.incomplete.append((file, "changed since it was read"))
                continue
            }
            let values = TemplateValues(header: header, sequence: classification.sequence, orientation: classification.orientation,
                                        confidence: classification.confidence)
            var record = AuditRecord(
                time: Date(), rule: rule.name, file: file.path, study: header.studyInstanceUID, series: header.seriesInstanceUID,
                sequence: classification.sequence, orientation: classification.orientation, confidence: classification.confidence,
                forest: classification.forest, cnn: classification.cnn, action: "", destination: nil, reason: classification.rule
            )
            do {
                let outcome = try act(on: file, header: header, values: values, review: review, record: &record, batch: batch)
                switch outcome {
                case .done(let destination):
                    if let destination { result.folders.insert((destination as NSString).deletingLastPathComponent) }
                    result.delivered += 1
                    // The stamp of what stays at the source is taken once the batch is committed.
                    result.handled[file.path] = .some(nil)
                case .quarantined:
                    result.quarantined += 1
                    result.handled[file.path] = .some(nil)
                }
            } catch {
                // The file stays where it is and is tried again at the next rescan.
                record.action = "error"
                record.reason = error.description
                result.errors += 1
                result.firstError = result.firstError ?? error.description
            }
            records[file.path] = record
        }
        commit()
        return result
    }

    private enum FileOutcome {
        case done(destination: String?)
        case quarantined
    }

    private func act(on file: TrackedFile, header: ImageHeader, values: TemplateValues, review: Bool, record: inout AuditRecord,
                     batch: DeliveryBatch) throws(DeliveryError) -> FileOutcome {
        let relative = rule.layout.relativePath(values)
        if review, let folder = rule.review {
            // Below the threshold: a person decides; nothing is rewritten.
            record.action = "review"
            return try deliver(file, to: folder + "/" + relative, mode: rule.action.delivery ?? .copy, rewrite: nil, record: &record, batch: batch)
        }
        let description = rule.description.text(values)
        let rewrite = rule.action.rewrite && header.seriesDescription != description
            ? AtomicRewrite(changes: [.seriesDescription: description]) : nil
        guard let mode = rule.action.delivery, let output = rule.output else {
            record.action = "rewrite"
            if let rewrite { try delivery.rewriteInPlace(file.path, rewrite: rewrite) }
            record.destination = file.path
            return .done(destination: nil)
        }
        record.action = (rule.action.rewrite ? "rewrite+" : "") + mode.rawValue
        return try deliver(file, to: output + "/" + relative, mode: mode, rewrite: rewrite, record: &record, batch: batch)
    }

    private func deliver(_ file: TrackedFile, to destination: String, mode: FolderRule.Action.Delivery, rewrite: AtomicRewrite?,
                         record: inout AuditRecord, batch: DeliveryBatch) throws(DeliveryError) -> FileOutcome {
        switch try delivery.deliver(file.path, to: destination, mode: mode, rewrite: rewrite, duplicates: rule.duplicates, batch: batch,
                                    expected: file.stamp) {
        case .delivered(let path):
            record.destination = path
            return .done(destination: path)
        case .alreadyThere(let path):
            record.destination = path
            record.reason = "identical file already at the destination"
            return .done(destination: path)
        case .collision(let existing):
            let reason = "a different file already holds \(existing) (duplicates: \(rule.duplicates.rawValue))"
            record.action = "duplicate"
            record.reason = reason
            guard mode == .move else { return .done(destination: nil) }
            let place = try Quarantine(folder: rule.quarantine, delivery: delivery).isolate(file.path, reason: reason)
            record.destination = place
            return .quarantined
        }
    }

    private func writeReviewNote(_ decision: SeriesDecision, into folder: String) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        guard let data = try? encoder.encode(decision) else { return }
        try? FileSystem.writeAtomically(data, to: folder + "/mrsort-classification.json")
    }
}

/// Sets files aside that cannot be handled, each with a `.reason` file beside it.
struct Quarantine: Sendable {
    let folder: String
    let delivery: FileDelivery

    /// Moves `path` into the quarantine folder (a numbered name if taken) and writes the reason
    /// first, so that a file is never in quarantine without one. Returns the new path.
    func isolate(_ path: String, reason: String) throws(DeliveryError) -> String {
        let name = (path as NSString).lastPathComponent
        let day = ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withFullDate])
        var target = folder + "/" + day + "/" + name
        var number = 0
        while FileSystem.exists(target) || FileSystem.exists(target + ".reason") {
            number += 1
            target = FileDelivery.numbered(folder + "/" + day + "/" + name, number)
        }
        do {
            try FileSystem.createDirectory(folder + "/" + day)
            let note = "file: \(path)\ntime: \(ISO8601DateFormatter().string(from: Date()))\nreason: \(reason)\n"
            try FileSystem.writeAtomically(Data(note.utf8), to: target + ".reason")
        } catch {
            throw .fileSystem(error)
        }
        switch try delivery.deliver(path, to: target, mode: .move, duplicates: .keepBoth) {
        case .delivered(let place), .alreadyThere(let place), .collision(let place): return place
        }
    }
}
