import DICOM
import Foundation

/// The token vocabularies of the multi-valued metadata attributes. Fixed when a model is
/// trained and stored in its file, so that serving encodes exactly the columns the model saw.
public struct FeatureVocabulary: Codable, Sendable, Equatable {
    public var imageType: [String]
    public var scanningSequence: [String]
    public var sequenceVariant: [String]
    public var scanOptions: [String]
    public var sequenceName: [String]

    public init(imageType: [String], scanningSequence: [String], sequenceVariant: [String],
                scanOptions: [String], sequenceName: [String]) {
        self.imageType = imageType
        self.scanningSequence = scanningSequence
        self.sequenceVariant = sequenceVariant
        self.scanOptions = scanOptions
        self.sequenceName = sequenceName
    }

    /// The metadata key under which dataset and model files keep the vocabulary (as JSON).
    public static let metadataKey = "vocabulary"

    /// The vocabulary stored in a dataset or model file's metadata; nil when absent or unreadable.
    public init?(metadata: [String: String]) {
        guard let json = metadata[Self.metadataKey],
              let vocabulary = try? JSONDecoder().decode(FeatureVocabulary.self, from: Data(json.utf8)) else { return nil }
        self = vocabulary
    }

    /// The JSON form stored under `metadataKey`.
    public func metadataValue() throws -> String {
        String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
    }

    /// The tokens seen in at least `minimumSeries` distinct series, sorted.
    /// Counting series rather than images keeps long series from deciding the vocabulary.
    public static func build(from headers: [ImageHeader], minimumSeries: Int = 2) -> FeatureVocabulary {
        func vocabulary(_ tokens: (ImageHeader) -> [String]) -> [String] {
            var series: [String: Set<String>] = [:]
            for header in headers {
                for token in Set(tokens(header)) { series[token, default: []].insert(header.seriesInstanceUID) }
            }
            return series.filter { $0.value.count >= minimumSeries }.keys.sorted()
        }
        return FeatureVocabulary(
            imageType: vocabulary { MetadataFeatures.tokens($0.imageType) ?? [] },
            scanningSequence: vocabulary { MetadataFeatures.tokens($0.scanningSequence) ?? [] },
            sequenceVariant: vocabulary { MetadataFeatures.tokens($0.sequenceVariant) ?? [] },
            scanOptions: vocabulary { MetadataFeatures.tokens($0.scanOptions) ?? [] },
            sequenceName: vocabulary { MetadataFeatures.sequenceNameTokens($0.sequenceName) ?? [] }
        )
    }
}

/// The per-image metadata feature vector of the random forest (Kasmanoff et al. 2022, with
/// the additions of the project brief). One implementation: `mrsort dataset` writes what it
/// encodes for training, and the classifier encodes the same way when serving.
///
/// Missing values are −1, as in the paper. Multi-valued strings become one flag per known
/// token plus a count of unknown tokens (all −1 when the attribute is absent).
/// SeriesDescription and ProtocolName are never features: they are what mrsort corrects.
public struct MetadataFeatures: Sendable {
    public let vocabulary: FeatureVocabulary
    /// Column names, in encoding order.
    public let columns: [String]

    static let missing: Float = -1
    static let photometricValues = ["MONOCHROME1", "MONOCHROME2", "RGB"]
    static let vendors = ["siemens", "ge", "philips", "canon"]
    static let complexComponents = ["MAGNITUDE", "PHASE", "REAL", "IMAGINARY"]

    public init(vocabulary: FeatureVocabulary) {
        self.vocabulary = vocabulary
        var columns: [String] = []
        for (field, tokens) in Self.tokenFields(vocabulary) {
            columns += tokens.map { "\(field)=\($0)" } + ["\(field)#unknown"]
        }
        columns += ["mr_acquisition_type", "repetition_time", "echo_time", "inversion_time", "echo_train_length",
                    "flip_angle", "slice_thickness", "pixel_spacing_row", "pixel_spacing_column"]
        columns += (0..<6).map { "image_orientation_\($0)" }
        columns += ["b_value", "temporal_positions", "contrast_agent"]
        columns += Self.photometricValues.map { "photometric=\($0)" } + ["photometric#other"]
        columns += Self.vendors.map { "manufacturer=\($0)" } + ["manufacturer#other"]
        columns += Self.complexComponents.map { "complex_component=\($0)" } + ["complex_component#other"]
        self.columns = columns
    }

    private static func tokenFields(_ vocabulary: FeatureVocabulary) -> [(String, [String])] {
        [("image_type", vocabulary.imageType), ("scanning_sequence", vocabulary.scanningSequence),
         ("sequence_variant", vocabulary.sequenceVariant), ("scan_options", vocabulary.scanOptions),
         ("sequence_name", vocabulary.sequenceName)]
    }

    /// The feature vector of one image.
    public func encode(_ header: ImageHeader) -> [Float] {
        var row: [Float] = []
        row.reserveCapacity(columns.count)
        let tokenLists: [[String]?] = [Self.tokens(header.imageType), Self.tokens(header.scanningSequence),
                                       Self.tokens(header.sequenceVariant), Self.tokens(header.scanOptions),
                                       Self.sequenceNameTokens(header.sequenceName)]
        for ((_, known), tokens) in zip(Self.tokenFields(vocabulary), tokenLists) {
            guard let tokens else {
                row += [Float](repeating: Self.missing, count: known.count + 1)
                continue
            }
            let present = Set(tokens)
            row += known.map { present.contains($0) ? 1 : 0 }
            row.append(Float(present.subtracting(known).count))
        }
        row.append(header.mrAcquisitionType.map { $0.uppercased() == "3D" ? 3 : $0.uppercased() == "2D" ? 2 : 0 } ?? Self.missing)
        for value in [header.repetitionTime, header.echoTime, header.inversionTime, header.echoTrainLength,
                      header.flipAngle, header.sliceThickness] {
            row.append(value.map(Float.init) ?? Self.missing)
        }
        row += Self.fixed(header.pixelSpacing, count: 2)
        row += Self.fixed(header.imageOrientationPatient, count: 6)
        row.append(header.diffusionBValue.map(Float.init) ?? Self.missing)
        row.append(header.numberOfTemporalPositions.map(Float.init) ?? Self.missing)
        row.append(header.namesContrastAgent ? 1 : 0)
        row += Self.categorical(header.photometricInterpretation?.uppercased(), Self.photometricValues)
        row += Self.categorical(header.manufacturer.map(Self.vendor), Self.vendors)
        row += Self.categorical(header.complexImageComponent, Self.complexComponents)
        return row
    }

    /// The normalised vendor of a Manufacturer value (Toshiba became Canon).
    public static func vendor(_ manufacturer: String) -> String {
        let name = manufacturer.lowercased()
        if name.contains("siemens") { return "siemens" }
        if name.hasPrefix("ge ") || name.contains("general electric") || name == "ge" || name.contains("gems") { return "ge" }
        if name.contains("philips") { return "philips" }
        if name.contains("canon") || name.contains("toshiba") { return "canon" }
        return name
    }

    /// Upper-cased, non-empty tokens of a multi-valued code string; nil when absent.
    public static func tokens(_ values: [String]?) -> [String]? {
        values.map { $0.map { $0.uppercased() }.filter { !$0.isEmpty } }
    }

    /// Tokens of a vendor sequence identifier (Siemens `*tfl3d1_16ns`, GE `3D FSPGR`, Philips `T1TFE`):
    /// each letter-led piece without its trailing counter digits, and its leading letters alone,
    /// lower-cased. `tfl3d1_16ns` gives `tfl3d`, `tfl`, `ns`.
    public static func sequenceNameTokens(_ name: String?) -> [String]? {
        guard let name else { return nil }
        var tokens: [String] = []
        let pieces = name.lowercased().split { !($0.isLetter || $0.isNumber) }
        for piece in pieces {
            let letters = piece.drop { $0.isNumber }
            guard let first = letters.first, first.isLetter else { continue }
            var stem = Substring(letters)
            while let last = stem.last, last.isNumber { stem = stem.dropLast() }
            tokens.append(String(stem))
            let prefix = stem.prefix { $0.isLetter }
            if prefix.count < stem.count { tokens.append(String(prefix)) }
        }
        return tokens
    }

    private static func fixed(_ values: [Double]?, count: Int) -> [Float] {
        guard let values, values.count == count else { return [Float](repeating: missing, count: count) }
        return values.map(Float.init)
    }

    private static func categorical(_ value: String?, _ known: [String]) -> [Float] {
        guard let value else { return [Float](repeating: missing, count: known.count + 1) }
        return known.map { $0 == value ? 1 : 0 } + [known.contains(value) ? 0 : 1]
    }
}
