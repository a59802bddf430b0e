import DICOM
import Foundation

/// What mrsort concluded about one series.
public struct SeriesClassification: Sendable, Codable, Equatable {
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var seriesNumber: Int?
    /// The SeriesDescription as received (never used to classify).
    public var seriesDescription: String?
    public var images: Int
    public var sequence: SequenceClass
    public var orientation: Orientation
    /// Share of the votes that went to `sequence`.
    public var confidence: Double
    /// Where `orientation` came from.
    public var orientationSource: OrientationSource
    /// The metadata forest's own series vote (over every image).
    public var forest: ModelVote
    /// The pixel CNN's own series vote (over the decoded images); nil without a CNN model or
    /// when no image of the series could be decoded.
    public var cnn: ModelVote? = nil
    /// Why the result differs from the models' vote, when a rule decided (e.g. `BodyPartExamined=KNEE`).
    public var rule: String?

    public enum OrientationSource: String, Sendable, Codable {
        /// ImageOrientationPatient of the images.
        case geometry
        /// No usable geometry: the CNN's orientation head (majority of the decoded images).
        case cnn
        /// No usable geometry and no CNN answer (or a scout, whose images mix planes, or a screen
        /// capture, which has no plane): reported as oblique.
        case unknown
    }

    /// One model's series vote.
    public struct ModelVote: Sendable, Codable, Equatable {
        public var sequence: SequenceClass
        public var confidence: Double
    }

    /// The shipped configuration's `minimum_confidence`: a series whose vote is weaker goes to review.
    public static let defaultMinimumConfidence = 0.5

    /// Whether the vote is too weak to act on without a person: confidence below the minimum
    /// (a minimum of 0 turns the check off).
    public func needsReview(minimumConfidence: Double) -> Bool {
        minimumConfidence > 0 && confidence < minimumConfidence
    }
}

/// Classifies series from their image headers with the models mrsort ships: the metadata forest
/// votes once per image, the pixel CNN once per decoded image, and the series takes the majority
/// of both models' votes over the images given to the CNN (two per image, as Kasmanoff et al.
/// 2022; one, the forest's, where the pixels cannot be decoded).
public struct SeriesClassifier: Sendable {
    public let forest: RandomForest
    /// The pixel CNN; nil: the forest alone decides.
    public let cnn: ConvolutionalNetwork?
    /// At most this many images per series, evenly spaced, are decoded for the CNN: a 3,000-image
    /// perfusion series must not cost 3,000 network passes. The forest still reads every header.
    public var cnnImagesPerSeries: Int

    public static let defaultCNNImagesPerSeries = 16

    public init(forest: RandomForest, cnn: ConvolutionalNetwork? = nil, cnnImagesPerSeries: Int = defaultCNNImagesPerSeries) {
        self.forest = forest
        self.cnn = cnn
        self.cnnImagesPerSeries = max(1, cnnImagesPerSeries)
    }

    /// Loads the default models from `directory`: the forest, and the CNN when its file is there
    /// (a CNN file that is present but unusable is an error, not silently ignored).
    public init(modelDirectory directory: String) throws(ModelError) {
        let cnnPath = directory + "/" + ModelDirectory.cnnFile
        let cnn = FileManager.default.fileExists(atPath: cnnPath) ? try ConvolutionalNetwork(contentsOf: cnnPath) : nil
        self.init(forest: try RandomForest(contentsOf: directory + "/" + ModelDirectory.forestFile), cnn: cnn)
    }

    /// The images the CNN reads: at most `count`, evenly spaced in instance order, first and last kept.
    static func evenlySpaced(_ headers: [ImageHeader], count: Int) -> [Int] {
        let order = headers.indices.sorted {
            (headers[$0].instanceNumber ?? 0, headers[$0].path, headers[$0].frame) < (headers[$1].instanceNumber ?? 0, headers[$1].path, headers[$1].frame)
        }
        return evenlySpaced(order, count: count)
    }

    /// At most `count` of `items`, evenly spaced, first and last included (all when count is 0
    /// or at least the number of items). The training dataset samples series the same way.
    public static func evenlySpaced<T>(_ items: [T], count: Int) -> [T] {
        guard count > 0, items.count > count else { return items }
        if count == 1 { return [items[items.count / 2]] }
        return (0..<count).map { items[Int((Double($0) * Double(items.count - 1) / Double(count - 1)).rounded())] }
    }

    /// Classifies one series; nil when it has no images.
    public func classify(_ headers: [ImageHeader]) -> SeriesClassification? {
        classify(series: [headers])[0]
    }

    /// Classifies several series at once, each exactly as alone; the slices of all of them go
    /// through the CNN together, so that short series fill its batches (a product over one
    /// slice costs several times a slice's share of a product over sixteen).
    public func classify(series: [[ImageHeader]]) -> [SeriesClassification?] {
        let decoded = series.map { decodeSlices($0) }
        let predictions = cnn?.predict(decoded.flatMap(\.slices)) ?? []
        var offset = 0
        return zip(series, decoded).map { headers, decoded in
            let own = predictions.isEmpty ? [] : Array(predictions[offset..<(offset + decoded.slices.count)])
            offset += decoded.slices.count
            return combine(headers, decoded: decoded, predictions: own)
        }
    }

    /// The images of a series the CNN reads, and their preprocessed slices.
    private struct DecodedSlices {
        /// Indices into the series' headers of the images chosen for the CNN.
        var chosen: [Int] = []
        /// Those of them whose pixels could be decoded, and their slices.
        var decoded: [Int] = []
        var slices: [[Float]] = []
    }

    private func decodeSlices(_ headers: [ImageHeader]) -> DecodedSlices {
        guard let cnn, !headers.isEmpty else { return DecodedSlices() }
        var result = DecodedSlices(chosen: Self.evenlySpaced(headers, count: cnnImagesPerSeries))
        for (index, slice) in zip(result.chosen, cnn.preprocessing.slices(of: result.chosen.map { headers[$0] })) {
            // An image whose pixels cannot be decoded (e.g. JPEG 2000) gets no CNN vote; its
            // metadata still gets the forest's.
            if case .success(let slice) = slice {
                result.decoded.append(index)
                result.slices.append(slice)
            }
        }
        return result
    }

    /// The series' vote from the forest on every header and the CNN's `predictions` on its
    /// decoded slices.
    private func combine(_ headers: [ImageHeader], decoded: DecodedSlices, predictions: [ConvolutionalNetwork.Prediction]) -> SeriesClassification? {
        guard let first = headers.first else { return nil }
        let order = SequenceClass.allCases
        // Forest: one vote per image, over every image.
        var forestVotes: [SequenceClass] = [], forestSupport: [SequenceClass: Double] = [:]
        var forestByImage: [[Double]] = []
        for header in headers {
            let p = forest.probabilities(header)
            for (index, value) in p.enumerated() { forestSupport[forest.classes[index], default: 0] += value }
            forestVotes.append(forest.mostProbable(p))
            forestByImage.append(p)
        }
        guard let forestVote = Vote(forestVotes, order: order, support: forestSupport) else { return nil }
        // CNN: one vote per decoded image; the ensemble adds the forest's votes on the same images.
        var cnnVote: Vote<SequenceClass>?
        var ensembleVote = forestVote
        var cnnOrientation: Vote<Orientation>?
        if cnn != nil {
            var cnnSupport: [SequenceClass: Double] = [:], forestImageSupport: [SequenceClass: Double] = [:]
            for prediction in predictions {
                for (k, value) in prediction.sequenceProbabilities.enumerated() { cnnSupport[order[k], default: 0] += value }
            }
            // The forest votes on every image given to the CNN; where the CNN read none of them, the
            // forest's vote over all images stands.
            let forestImages = decoded.decoded.isEmpty ? [] : decoded.chosen
            for index in forestImages {
                for (k, value) in forestByImage[index].enumerated() { forestImageSupport[forest.classes[k], default: 0] += value }
            }
            cnnVote = Vote(predictions.map(\.sequence), order: order, support: cnnSupport)
            if let combined = Vote.ensemble(forest: forestImages.map { forestVotes[$0] }, forestSupport: forestImageSupport,
                                            cnn: predictions.map(\.sequence)) {
                ensembleVote = combined
            }
            cnnOrientation = Vote(predictions.map(\.orientation), order: Orientation.allCases)
        }
        // Orientation: geometry where the images have it; else the CNN's head, except for scouts
        // (their images mix planes, so they are exempt from the orientation vote) and screen
        // captures (Secondary Capture: a page, not a slice).
        let geometry = Orientation(series: headers)
        let orientation: Orientation, source: SeriesClassification.OrientationSource
        if let geometry {
            (orientation, source) = (geometry, .geometry)
        } else if let cnnOrientation, ensembleVote.winner != .scout, !headers.contains(where: \.isSecondaryCapture) {
            (orientation, source) = (cnnOrientation.winner, .cnn)
        } else {
            (orientation, source) = (.oblique, .unknown)
        }
        // A series that says it shows another body part is not brain MRI (the paper's largest error source).
        let nonHead = headers.lazy.compactMap { BodyPart.nonHead($0.bodyPartExamined) }.first
        return SeriesClassification(
            studyInstanceUID: first.studyInstanceUID,
            seriesInstanceUID: first.seriesInstanceUID,
            seriesNumber: first.seriesNumber,
            seriesDescription: first.seriesDescription,
            images: headers.count,
            sequence: nonHead == nil ? ensembleVote.winner : .other,
            orientation: orientation,
            confidence: nonHead == nil ? ensembleVote.confidence : 1,
            orientationSource: source,
            forest: .init(sequence: forestVote.winner, confidence: forestVote.confidence),
            cnn: cnnVote.map { .init(sequence: $0.winner, confidence: $0.confidence) },
            rule: nonHead.map { "BodyPartExamined=\($0)" }
        )
    }
}

/// Where the shipped models are found without configuration.
public enum ModelDirectory {
    /// The running program's file: `/proc/self/exe` (a program started through PATH has only its
    /// name in `argv[0]`), else `argv[0]`.
    public static var runningExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    public static let forestFile = "forest.safetensors"
    /// Optional: without it the forest classifies alone.
    public static let cnnFile = "cnn.safetensors"
    /// Installed location (Debian package).
    public static let installed = "/usr/share/mrsort/models"

    /// `$MRSORT_MODELS`, else `models/` in a checkout that holds the executable (walking up from
    /// it, as for `.build/debug/mrsort`, also through a symbolic link to it on PATH), else the
    /// installed location.
    public static func locate(executable: String = runningExecutable) -> String {
        if let configured = ProcessInfo.processInfo.environment["MRSORT_MODELS"] { return configured }
        var directory = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = directory.appendingPathComponent("models")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent(forestFile).path) {
                return candidate.path
            }
            directory.deleteLastPathComponent()
        }
        return installed
    }
}
