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
    /// The metadata forest's own series vote.
    public var forest: ModelVote
    /// Why the result differs from the models' vote, when a rule decided (e.g. `BodyPartExamined=KNEE`).
    public var rule: String?

    public enum OrientationSource: String, Sendable, Codable {
        /// ImageOrientationPatient of the images.
        case geometry
        /// No usable geometry: unknown, reported as oblique.
        case unknown
    }

    /// One model's series vote.
    public struct ModelVote: Sendable, Codable, Equatable {
        public var sequence: SequenceClass
        public var confidence: Double
    }
}

/// Classifies series from their image headers with the models mrsort ships.
public struct SeriesClassifier: Sendable {
    public let forest: RandomForest

    public init(forest: RandomForest) {
        self.forest = forest
    }

    /// Loads the default models from `directory`.
    public init(modelDirectory directory: String) throws(ModelError) {
        self.init(forest: try RandomForest(contentsOf: directory + "/" + ModelDirectory.forestFile))
    }

    /// Classifies one series; nil when it has no images.
    public func classify(_ headers: [ImageHeader]) -> SeriesClassification? {
        guard let first = headers.first, let vote = forest.vote(headers) else { return nil }
        let orientation = Orientation(series: headers)
        // A series that says it shows another body part is not brain MRI (the paper's largest error source).
        let nonHead = headers.lazy.compactMap { BodyPart.nonHead($0.bodyPartExamined) }.first
        return SeriesClassification(
            studyInstanceUID: first.studyInstanceUID,
            seriesInstanceUID: first.seriesInstanceUID,
            seriesNumber: first.seriesNumber,
            seriesDescription: first.seriesDescription,
            images: headers.count,
            sequence: nonHead == nil ? vote.winner : .other,
            orientation: orientation ?? .oblique,
            confidence: nonHead == nil ? vote.confidence : 1,
            orientationSource: orientation == nil ? .unknown : .geometry,
            forest: .init(sequence: vote.winner, confidence: vote.confidence),
            rule: nonHead.map { "BodyPartExamined=\($0)" }
        )
    }
}

/// Where the shipped models are found without configuration.
public enum ModelDirectory {
    public static let forestFile = "forest.safetensors"
    /// Installed location (Debian package).
    public static let installed = "/usr/share/mrsort/models"

    /// `$MRSORT_MODELS`, else `models/` in a checkout that holds the executable (walking up from
    /// it, as for `.build/debug/mrsort`), else the installed location.
    public static func locate(executable: String = CommandLine.arguments[0]) -> String {
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
