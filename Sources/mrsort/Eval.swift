import ArgumentParser
import Classification
import DICOM
import Foundation

/// `mrsort eval`: the paper's Table 2 for the forest, the CNN and the ensemble, side by side.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score the forest, the CNN and the ensemble against a labels.csv (per class N, precision, recall, F1).",
        discussion: """
        Series are matched to labels by SeriesInstanceUID. Where labels.csv has the columns of \
        ../shared/realdata, its conventions hold: series whose `subject` is `phantom` are reported \
        apart (--include-phantoms scores them with the rest), and series whose `pixels` are \
        `synthetic` are left out of the CNN's figures. With --out, confusion matrices are written \
        as SVG (confusion-forest.svg, confusion-cnn.svg, confusion-ensemble.svg) with \
        misclassified.csv (every series any model got wrong, with both models' answers). The \
        ensemble's series below --minimum-confidence, which the agent sends to review, are counted \
        apart as well: how many, how many of them are right, and the accuracy of the rest.
        """
    )

    @Argument(help: "Folder of DICOM series (searched recursively).")
    var folder: String

    @Option(help: "labels.csv with dir, series_uid, sequence, orientation, vendor columns.")
    var labels: String

    @Option(help: "Model folder (default: $MRSORT_MODELS, the checkout's models/, or /usr/share/mrsort/models).")
    var models: String?

    @Option(help: "At most this many images per series, evenly spaced, are decoded for the CNN.")
    var cnnImages = SeriesClassifier.defaultCNNImagesPerSeries

    @Option(help: "Folder for the confusion matrices and the list of misclassified series.")
    var out: String?

    @Flag(inversion: .prefixedNo, help: "Settle pre/post-contrast T1 from the order of the study's series.")
    var studyContext = true

    @Option(help: "Series whose ensemble confidence is below this are counted apart, as the agent sends them to review (0: none).")
    var minimumConfidence = SeriesClassification.defaultMinimumConfidence

    @Flag(help: "Score phantom series (labels' `subject` column) with the rest instead of apart.")
    var includePhantoms = false

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        try Classify.validateMinimumConfidence(minimumConfidence)
    }

    func run() throws {
        let labelled = try SeriesLabels(contentsOf: labels)
        let truth = Dictionary(labelled.rows.map { ($0.seriesUID, $0) }, uniquingKeysWith: { first, _ in first })
        var classifier = try SeriesClassifier(modelDirectory: models ?? ModelDirectory.locate())
        classifier.cnnImagesPerSeries = max(1, cnnImages)
        var headers: [ImageHeader] = []
        var skipped = 0
        for file in try DICOMFileDiscovery.files(in: [folder]) {
            do { headers += try ImageHeader.read(from: file) } catch { skipped += 1 }
        }
        let all = classifier.classify(images: headers, studyContext: studyContext)
        let results = all.filter { truth[$0.seriesInstanceUID] != nil }
        let labelledPairs = results.compactMap { r in truth[r.seriesInstanceUID].map { (row: $0, result: r) } }
        let pairs = includePhantoms ? labelledPairs : labelledPairs.filter { !$0.row.isPhantom }
        let phantoms = includePhantoms ? [] : labelledPairs.filter(\.row.isPhantom)
        let report = Report(
            series: pairs.count, unlabelled: all.count - results.count, skippedFiles: skipped,
            forest: ModelScores(model: "forest", pairs: pairs.map { ($0.row.sequence, $0.result.forest.sequence) }),
            cnn: classifier.cnn == nil ? nil : ModelScores(model: "cnn", pairs: pairs.filter(\.row.hasRealPixels).map { ($0.row.sequence, $0.result.cnn?.sequence) }),
            ensemble: ModelScores(model: "ensemble", pairs: pairs.map { ($0.row.sequence, $0.result.sequence) }),
            confidence: ConfidenceSplit(minimumConfidence: minimumConfidence, pairs: pairs.map { ($0.row.sequence, $0.result) }),
            orientationSeries: pairs.filter { $0.row.orientation != nil }.count,
            orientationAccuracy: Self.share(pairs.filter { $0.row.orientation != nil }) { $0.row.orientation == $0.result.orientation },
            phantoms: phantoms.isEmpty ? nil : PhantomScores(
                series: phantoms.count,
                forest: phantoms.filter { $0.result.forest.sequence == $0.row.sequence }.count,
                cnn: classifier.cnn == nil ? nil : phantoms.filter { $0.result.cnn?.sequence == $0.row.sequence }.count,
                ensemble: phantoms.filter { $0.result.sequence == $0.row.sequence }.count),
            sources: Self.sources(pairs.map { (dir: $0.row.dir, hasRealPixels: $0.row.hasRealPixels, label: $0.row.sequence, result: $0.result) },
                                  cnn: classifier.cnn != nil),
            misclassified: labelledPairs.filter { p in
                p.result.sequence != p.row.sequence || p.result.forest.sequence != p.row.sequence
                    || (p.result.cnn.map { $0.sequence != p.row.sequence } ?? false)
                    || (p.row.orientation.map { $0 != p.result.orientation } ?? false)
            }.map { Miss(dir: $0.row.dir, seriesUID: $0.row.seriesUID, label: $0.row.sequence, labelOrientation: $0.row.orientation,
                         ensemble: $0.result.sequence, orientation: $0.result.orientation, forest: $0.result.forest.sequence,
                         cnn: $0.result.cnn?.sequence, confidence: $0.result.confidence, rule: $0.result.rule,
                         phantom: $0.row.isPhantom) }
        )
        if let out { try write(report, to: out) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.table())
        }
    }

    /// Each source's figures, where labels' `dir` names sources as the real sets do (`source__series`);
    /// nil where no folder does (a synthetic corpus).
    static func sources(_ pairs: [(dir: String, hasRealPixels: Bool, label: SequenceClass, result: SeriesClassification)], cnn: Bool) -> [SourceScore]? {
        guard pairs.contains(where: { $0.dir.contains("__") }) else { return nil }
        let grouped = Dictionary(grouping: pairs) { pair in pair.dir.components(separatedBy: "__").first ?? pair.dir }
        return grouped.keys.sorted().map { source in
            let members = grouped[source] ?? []
            let withPixels = members.filter(\.hasRealPixels)
            return SourceScore(source: source, series: members.count,
                               forest: members.filter { $0.result.forest.sequence == $0.label }.count,
                               cnn: cnn ? withPixels.filter { $0.result.cnn?.sequence == $0.label }.count : nil, cnnSeries: withPixels.count,
                               ensemble: members.filter { $0.result.sequence == $0.label }.count)
        }
    }

    static func share<T>(_ items: [T], _ predicate: (T) -> Bool) -> Double {
        items.isEmpty ? 0 : Double(items.filter(predicate).count) / Double(items.count)
    }

    private func write(_ report: Report, to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for scores in [report.forest, report.cnn, report.ensemble].compactMap({ $0 }) {
            try scores.confusionSVG(title: "mrsort eval: \(scores.model)")
                .write(toFile: folder + "/confusion-\(scores.model).svg", atomically: true, encoding: .utf8)
        }
        var csv = "dir,series_uid,label,label_orientation,ensemble,orientation,forest,cnn,confidence,rule,phantom\n"
        for miss in report.misclassified {
            csv += [miss.dir, miss.seriesUID, miss.label.rawValue, miss.labelOrientation?.rawValue ?? "", miss.ensemble.rawValue,
                    miss.orientation.rawValue, miss.forest.rawValue, miss.cnn?.rawValue ?? "", String(format: "%.3f", miss.confidence),
                    miss.rule ?? "", miss.phantom ? "1" : "0"].map(Classify.csvField).joined(separator: ",") + "\n"
        }
        try csv.write(toFile: folder + "/misclassified.csv", atomically: true, encoding: .utf8)
    }

    struct Miss: Encodable {
        let dir: String
        let seriesUID: String
        let label: SequenceClass
        let labelOrientation: Orientation?
        let ensemble: SequenceClass
        let orientation: Orientation
        let forest: SequenceClass
        let cnn: SequenceClass?
        let confidence: Double
        let rule: String?
        /// Reported apart from the figures (labels' `subject` column).
        let phantom: Bool
    }

    /// Phantom series, reported apart: how many each model labels as the labels do.
    struct PhantomScores: Encodable {
        let series: Int
        let forest: Int
        let cnn: Int?
        let ensemble: Int
    }

    /// One source's series right per model (the folder name before `__`, as leave-one-source-out
    /// splits the real sets): a figure pooled over sources hides one that fails.
    struct SourceScore: Encodable {
        let source: String
        let series: Int
        let forest: Int
        /// Right among the `cnnSeries` with real pixels; nil without a CNN.
        let cnn: Int?
        let cnnSeries: Int
        let ensemble: Int
    }

    struct Report: Encodable {
        let series: Int
        let unlabelled: Int
        let skippedFiles: Int
        let forest: ModelScores
        let cnn: ModelScores?
        let ensemble: ModelScores
        /// The ensemble's answers split at the minimum confidence (review).
        let confidence: ConfidenceSplit
        let orientationSeries: Int
        let orientationAccuracy: Double
        let phantoms: PhantomScores?
        let sources: [SourceScore]?
        let misclassified: [Miss]

        /// Table 2 of the paper, one column group per model.
        func table() -> String {
            let models = [forest, cnn, ensemble].compactMap { $0 }
            let header = ["class", "N"] + models.flatMap { ["\($0.model) P", "R", "F1"] }
            let classes = SequenceClass.allCases.filter { c in models.contains { $0.classes.contains { $0.sequence == c } } }
            func f(_ value: Double) -> String { String(format: "%.2f", value) }
            var rows = classes.map { c -> [String] in
                let n = ensemble.classes.first { $0.sequence == c }?.n ?? 0
                return [c.rawValue, String(n)] + models.flatMap { m -> [String] in
                    guard let s = m.classes.first(where: { $0.sequence == c }) else { return ["-", "-", "-"] }
                    return [f(s.precision), f(s.recall), f(s.f1)]
                }
            }
            rows.append(["weighted avg", String(ensemble.series)] + models.flatMap { [f($0.weightedPrecision), f($0.weightedRecall), f($0.weightedF1)] })
            var text = TextTable(header: header, rows: rows).render()
            text += "\n\nsequence accuracy: " + models.map { "\($0.model) \(String(format: "%.3f", $0.accuracy)) (\($0.series) series)" }.joined(separator: ", ")
            text += String(format: "\nensemble below confidence %.2f (review): %d series, %d of them right; accuracy of the other %d: %.3f",
                           confidence.minimumConfidence, confidence.review, confidence.reviewCorrect, confidence.confident,
                           confidence.confidentAccuracy)
            text += "\norientation accuracy: \(String(format: "%.3f", orientationAccuracy)) (\(orientationSeries) series)"
            if let sources {
                text += "\n\nper source (the folder name before `__`), series right of the source's series:\n"
                text += TextTable(header: ["source", "series", "forest", "cnn", "ensemble"], rows: sources.map { s in
                    [s.source, String(s.series), "\(s.forest)/\(s.series)", s.cnn.map { "\($0)/\(s.cnnSeries)" } ?? "-", "\(s.ensemble)/\(s.series)"]
                }).render()
                text += "\n"
            }
            if let phantoms {
                text += "\nphantoms (reported apart, labelled other): " + [("forest", phantoms.forest), ("cnn", phantoms.cnn), ("ensemble", phantoms.ensemble)]
                    .compactMap { name, correct in correct.map { "\(name) \($0) of \(phantoms.series)" } }.joined(separator: ", ")
            }
            text += "\nmisclassified by at least one model (phantoms included): \(misclassified.count)"
            if unlabelled > 0 { text += "\nseries without a label (not scored): \(unlabelled)" }
            if skippedFiles > 0 { text += "\nfiles skipped (not DICOM or unreadable): \(skippedFiles)" }
            return text
        }
    }
}
