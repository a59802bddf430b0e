import DICOM
import Foundation

/// The per-image feature matrix of a labelled corpus, as `mrsort dataset` writes it for the
/// Python training code: the only way training sees DICOM, so training and serving share one
/// feature implementation.
///
/// File layout (safetensors): `features` F32 [images, columns]; `sequence` I64 [images] (index
/// into `SequenceClass.allCases`); `orientation` I64 [images] (index into `Orientation.allCases`,
/// −1 where unlabelled); `series` I64 [images] (index into the series list). Metadata:
/// `format` = `mrsort-dataset`, `columns`, `vocabulary`, `sequences`, `orientations` and, per
/// series, `series_uids`, `series_dirs`, `series_vendors`, `series_subjects` (JSON arrays).
public struct TrainingDataset {
    public static let format = "mrsort-dataset"

    public struct Image {
        public var header: ImageHeader
        public var series: Int
    }

    public private(set) var series: [SeriesLabels.Row] = []
    public private(set) var images: [Image] = []

    public init() {}

    /// Adds the images of one labelled series.
    public mutating func add(series row: SeriesLabels.Row, headers: [ImageHeader]) {
        series.append(row)
        images += headers.map { Image(header: $0, series: series.count - 1) }
    }

    /// Encodes every image with `features` and returns the file contents.
    public func encoded(with features: MetadataFeatures, extraMetadata: [String: String] = [:]) throws -> SafeTensors {
        let width = features.columns.count
        var matrix: [Float] = []
        matrix.reserveCapacity(images.count * width)
        for image in images { matrix += features.encode(image.header) }
        let sequenceIndex = Dictionary(uniqueKeysWithValues: SequenceClass.allCases.enumerated().map { ($1, Int64($0)) })
        let orientationIndex = Dictionary(uniqueKeysWithValues: Orientation.allCases.enumerated().map { ($1, Int64($0)) })
        let sequences = images.map { sequenceIndex[series[$0.series].sequence]! }
        let orientations = images.map { image in series[image.series].orientation.map { orientationIndex[$0]! } ?? -1 }
        func json<T: Encodable>(_ value: T) throws -> String { String(decoding: try JSONEncoder().encode(value), as: UTF8.self) }
        var metadata = extraMetadata
        metadata["format"] = Self.format
        metadata["columns"] = try json(features.columns)
        metadata[FeatureVocabulary.metadataKey] = try features.vocabulary.metadataValue()
        metadata["sequences"] = try json(SequenceClass.allCases.map(\.rawValue))
        metadata["orientations"] = try json(Orientation.allCases.map(\.rawValue))
        metadata["series_uids"] = try json(series.map(\.seriesUID))
        metadata["series_dirs"] = try json(series.map(\.dir))
        metadata["series_vendors"] = try json(series.map(\.vendor))
        metadata["series_subjects"] = try json(series.map { $0.columns["subject"] ?? "" })
        return SafeTensors(tensors: [
            "features": .init(matrix, shape: [images.count, width]),
            "sequence": .init(sequences, shape: [images.count]),
            "orientation": .init(orientations, shape: [images.count]),
            "series": .init(images.map { Int64($0.series) }, shape: [images.count]),
        ], metadata: metadata)
    }
}
