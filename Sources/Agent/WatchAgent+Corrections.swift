import Classification
import DICOM
import Dispatch
import Foundation
import Logging

/// Corrections: `mrsort relabel` requests and the revisions study context makes.
extension WatchAgent {
    // MARK: Corrections

    func applyRelabelRequests() {
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

    func relabel(_ request: RelabelRequest) {
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
    func reapply(_ changed: SeriesDecision, reason: String) {
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
}
