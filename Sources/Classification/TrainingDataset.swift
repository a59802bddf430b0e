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
///
/// With slices (`mrsort dataset --images`): `images` U8 [images, size, size], the
/// `SlicePreprocessing` output quantised as `round(value × 255)`; metadata `image_preprocessing`
/// (its parameters as JSON) and `image_encoding`.
public struct TrainingDataset {
    public static let format = "mrsort-dataset"

    public struct Image {
        public var header: ImageHeader
        public var series: Int
        /// The preprocessed slice quantised to 0…255, when the dataset carries pixels.
        public var slice: [UInt8]?
    }

    /// How the slices were made; nil for a metadata-only dataset.
    public var preprocessing: SlicePreprocessing?

    public private(set) var series: [SeriesLabels.Row] = []
    public private(set) var images: [Image] = []

    public init(preprocessing: SlicePreprocessing? = nil) {
        self.preprocessing = preprocessing
    }

    /// Adds the images of one labelled series; `slices`, when given, are the preprocessed
    /// pixels of each header (values in [0, 1]).
    public mutating func add(series row: SeriesLabels.Row, headers: [ImageHeader], slices: [[Float]]? = nil) {
        precondition(slices == nil || slices?.count == headers.count, "one slice per header")
        series.append(row)
        for (index, header) in headers.enumerated() {
            let slice = slices.map { $0[index].map { UInt8((min(1, max(0, $0)) * 255).rounded()) } }
            images.append(Image(header: header, series: series.count - 1, slice: slice))
        }
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
        var tensors: [String: SafeTensors.Tensor] = [
            "features": .init(matrix, shape: [images.count, width]),
            "sequence": .init(sequences, shape: [images.count]),
            "orientation": .init(orientations, shape: [images.count]),
            "series": .init(images.map { Int64($0.series) }, shape: [images.count]),
        ]
        if let preprocessing {
            let side = preprocessing.size
            var pixels: [UInt8] = []
            pixels.reserveCapacity(images.count * side * side)
            for image in images {
                guard let slice = image.slice, slice.count == side * side else {
                    throw DatasetError.missingSlice(path: image.header.path, frame: image.header.frame)
                }
                pixels += slice
            }
            tensors["images"] = .init(pixels, shape: [images.count, side, side])
            metadata["image_preprocessing"] = try json(preprocessing)
            metadata["image_encoding"] = "u8 = round(255 * slice), slice in [0, 1]"
        }
        return SafeTensors(tensors: tensors, metadata: metadata)
    }
}

/// Why a dataset could not be encoded.
public enum DatasetError: Error, CustomStringConvertible {
    /// A pixel dataset holds an image without its slice.
    case missingSlice(path: String, frame: Int)

    public var description: String {
        switch self {
        case .missingSlice(let path, let frame): "\(path) frame \(frame): no preprocessed slice"
        }
    }
}
