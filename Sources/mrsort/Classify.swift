import ArgumentParser
import Classification
import DICOM
import Foundation

/// `mrsort classify`: one row per series found under the paths.
struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify the DICOM series found under the paths (one row per series).",
        discussion: """
        Files are grouped by StudyInstanceUID and SeriesInstanceUID. Per image the metadata random \
        forest votes, and, when models/cnn.safetensors is there, the pixel CNN votes on up to \
        --cnn-images evenly spaced images; the sequence is the majority of both models' votes over \
        those images (an image it cannot decode keeps the forest's vote; confidence: the winner's \
        share), and each model's own vote is shown. \
        The orientation comes from ImageOrientationPatient, else from the CNN (scouts excepted). \
        A series whose BodyPartExamined names another body part (knee, spine, abdomen …) is `other`, \
        and so is one that the CNN reads as `other` while the forest puts at least a fifth of its \
        probability for its own class and `other` on `other`. \
        Within a study, T1 series acquired after the contrast are post-contrast: after a perfusion \
        series, from the first series naming a ContrastBolusAgent on, the later of two T1 of one kind \
        in one plane (not a variable-flip-angle T1 map, which precedes the contrast), and, where the \
        models' answers break the order, the last ones in acquisition order, as many as the models \
        read as post; a T1 acquired first after the study's localisers is pre-contrast unless it names \
        the agent. A confidence below --minimum-confidence (the default \
        configuration's, at which the agent sends a series to review) is marked `low`. Files that \
        are not DICOM are listed as skipped.
        """
    )

    @Argument(help: "DICOM files or directories (searched recursively).")
    var paths: [String]

    @Option(help: "Model folder (default: $MRSORT_MODELS, the checkout's models/, or /usr/share/mrsort/models).")
    var models: String?

    @Option(help: "At most this many images per series, evenly spaced, are decoded for the CNN.")
    var cnnImages = SeriesClassifier.defaultCNNImagesPerSeries

    @Flag(inversion: .prefixedNo, help: "Settle pre/post-contrast T1 from the order of the study's series.")
    var studyContext = true

    @Option(help: "Confidence below this is marked low: the agent sends such a series to review (0: never).")
    var minimumConfidence = SeriesClassification.defaultMinimumConfidence

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "Print CSV.")
    var csv = false

    func validate() throws {
        if json && csv { throw ValidationError("--json and --csv exclude each other") }
        try Self.validateMinimumConfidence(minimumConfidence)
    }

    static func validateMinimumConfidence(_ value: Double) throws {
        guard (0...1).contains(value) else { throw ValidationError("--minimum-confidence must lie between 0 and 1, not \(value)") }
    }

    func run() throws {
        var classifier = try SeriesClassifier(modelDirectory: models ?? ModelDirectory.locate())
        classifier.cnnImagesPerSeries = max(1, cnnImages)
        var headers: [ImageHeader] = []
        var skipped: [FileFailure] = []
        for file in try DICOMFileDiscovery.files(in: paths) {
            do {
                headers += try ImageHeader.read(from: file)
            } catch {
                skipped.append(FileFailure(error))
            }
        }
        guard !headers.isEmpty || !skipped.isEmpty else {
            throw CommandFailure("no files found in " + paths.joined(separator: ", "), status: ExitStatus.noInput)
        }
        let results = classifier.classify(images: headers, studyContext: studyContext)
        try report(results, skipped: skipped)
        // As inspect: files given, but not one DICOM image among them, is a data error (after the report).
        if headers.isEmpty { throw ExitCode(ExitStatus.dataError) }
    }

    private func report(_ results: [SeriesClassification], skipped: [FileFailure]) throws {
        if json {
            struct Report: Encodable { let minimumConfidence: Double; let series: [Row]; let skipped: [FileFailure] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let rows = results.map { Row(classification: $0, lowConfidence: $0.needsReview(minimumConfidence: minimumConfidence)) }
            let report = Report(minimumConfidence: minimumConfidence, series: rows, skipped: skipped)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        if csv {
            print("study_uid,series_uid,series_number,series_description,images,sequence,orientation,confidence,forest_sequence,forest_confidence,cnn_sequence,cnn_confidence,orientation_source,rule,low_confidence")
            for r in results {
                let cnn: [String] = [r.cnn?.sequence.rawValue ?? "", r.cnn.map { String(format: "%.3f", $0.confidence) } ?? ""]
                let fields: [String] = [r.studyInstanceUID, r.seriesInstanceUID, r.seriesNumber.map(String.init) ?? "", r.seriesDescription ?? "",
                                        String(r.images), r.sequence.rawValue, r.orientation.rawValue, String(format: "%.3f", r.confidence),
                                        r.forest.sequence.rawValue, String(format: "%.3f", r.forest.confidence)]
                    + cnn + [r.orientationSource.rawValue, r.rule ?? "", r.needsReview(minimumConfidence: minimumConfidence) ? "1" : "0"]
                print(fields.map(Self.csvField).joined(separator: ","))
            }
            for failure in skipped { FileHandle.standardError.write(Data("skipped \(failure.path): \(failure.reason)\n".utf8)) }
            return
        }
        let header = ["study", "series", "description", "images", "sequence", "orientation", "confidence", "forest", "cnn", "rule"]
        let rows = results.map { r -> [String] in
            let forest = "\(r.forest.sequence.rawValue) \(String(format: "%.2f", r.forest.confidence))"
            let cnn = r.cnn.map { "\($0.sequence.rawValue) \(String(format: "%.2f", $0.confidence))" } ?? "-"
            return [String(r.studyInstanceUID.suffix(12)), r.seriesNumber.map(String.init) ?? "-",
                    String((r.seriesDescription ?? "").prefix(32)), String(r.images), r.sequence.rawValue,
                    r.orientation.rawValue + Self.orientationMark(r.orientationSource),
                    String(format: "%.2f", r.confidence) + (r.needsReview(minimumConfidence: minimumConfidence) ? " low" : ""),
                    forest, cnn, r.rule ?? ""]
        }
        print(TextTable(header: header, rows: rows).render())
        for failure in skipped { print("skipped \(failure.path): \(failure.reason)") }
    }

    /// A series of the JSON report: the classification's fields and whether its confidence is low.
    struct Row: Encodable {
        let classification: SeriesClassification
        let lowConfidence: Bool

        private enum CodingKeys: String, CodingKey { case lowConfidence }

        func encode(to encoder: Encoder) throws {
            try classification.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(lowConfidence, forKey: .lowConfidence)
        }
    }

    /// `?`: no geometry and no model answer; `*`: from the CNN, not from geometry.
    static func orientationMark(_ source: SeriesClassification.OrientationSource) -> String {
        switch source {
        case .geometry: ""
        case .cnn: "*"
        case .unknown: "?"
        }
    }

    static func csvField(_ value: String) -> String {
        value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : value
    }
}

/// Left-aligned columns separated by two spaces.
struct TextTable {
    let header: [String]
    let rows: [[String]]

    func render() -> String {
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        return ([header] + rows).map { row in
            zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }
}
