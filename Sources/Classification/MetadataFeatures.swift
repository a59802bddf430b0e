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
    /// The fixed columns after the token flags, by version. A model file lists its columns; the
    /// encoder that serves it is the layout whose columns they are, so a model trained before a
    /// layout grew still loads and sees exactly what it was trained on. New columns are appended.
    public enum Layout: Int, Sendable, CaseIterable {
        /// Kasmanoff et al. with the project's additions (models up to corpus v8).
        case v1 = 1
        /// v1 plus the de-identification-proof physics columns (issue 23): `diffusion`,
        /// `acquisition_contrast=*`, `echo_planar`, `echo_pulse=*`, `complex_part=*`, `missing_count`,
        /// `body_part_non_head`.
        case v2 = 2

        public static let current = Layout.v2
    }

    public let vocabulary: FeatureVocabulary
    public let layout: Layout
    /// Column names, in encoding order.
    public let columns: [String]

    static let missing: Float = -1
    static let photometricValues = ["MONOCHROME1", "MONOCHROME2", "RGB"]
    static let vendors = ["siemens", "ge", "philips", "canon"]
    static let complexComponents = ["MAGNITUDE", "PHASE", "REAL", "IMAGINARY"]
    /// AcquisitionContrast (0008,9209) defined terms (PS3.3 C.8.16.1).
    static let acquisitionContrasts = ["DIFFUSION", "FLOW_ENCODED", "FLUID_ATTENUATED", "PERFUSION", "PROTON_DENSITY",
                                       "STIR", "TAGGING", "T1", "T2", "T2_STAR", "TOF", "MIXED", "UNKNOWN"]
    static let echoPulses = ["SPIN", "GRADIENT", "BOTH"]

    public init(vocabulary: FeatureVocabulary, layout: Layout = .current) {
        self.vocabulary = vocabulary
        self.layout = layout
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
        if layout.rawValue >= Layout.v2.rawValue {
            columns.append("diffusion")
            columns += Self.acquisitionContrasts.map { "acquisition_contrast=\($0)" } + ["acquisition_contrast#other"]
            columns.append("echo_planar")
            columns += Self.echoPulses.map { "echo_pulse=\($0)" } + ["echo_pulse#other"]
            columns += Self.complexComponents.map { "complex_part=\($0)" } + ["complex_part#other"]
            columns += ["missing_count", "body_part_non_head"]
        }
        self.columns = columns
    }

    /// The encoder of a model file's columns: the layout that gives exactly `columns` with this vocabulary.
    /// Throws a description of the first difference from the current layout when none does.
    public init(vocabulary: FeatureVocabulary, columns: [String]) throws(LayoutMismatch) {
        for layout in Layout.allCases.reversed() {
            let features = MetadataFeatures(vocabulary: vocabulary, layout: layout)
            if features.columns == columns {
                self = features
                return
            }
        }
        let current = MetadataFeatures(vocabulary: vocabulary)
        let differing = zip(current.columns, columns).first { $0 != $1 }
        throw LayoutMismatch(description: "model has \(columns.count) columns, this build encodes \(current.columns.count)"
            + " (layout v\(Layout.current.rawValue); older: "
            + Layout.allCases.dropLast().map { "v\($0.rawValue) \(MetadataFeatures(vocabulary: vocabulary, layout: $0).columns.count)" }
                .joined(separator: ", ") + ")"
            + (differing.map { "; first difference: \($0.1) vs \($0.0)" } ?? ""))
    }

    public struct LayoutMismatch: Error, CustomStringConvertible {
        public let description: String
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
        if layout.rawValue >= Layout.v2.rawValue {
            row.append(Self.diffusionEvidence(header) ? 1 : 0)
            row += Self.categorical(header.acquisitionContrast, Self.acquisitionContrasts)
            row.append(header.echoPlanarPulseSequence.map { $0 == "YES" ? 1 : 0 } ?? Self.missing)
            row += Self.categorical(header.echoPulseSequence, Self.echoPulses)
            row += Self.categorical(Self.complexPart(header), Self.complexComponents)
            row.append(Float(Self.missingCount(header)))
            row.append(header.bodyPartExamined.map { BodyPart.nonHead($0) == nil ? 0 : 1 } ?? Self.missing)
        }
        return row
    }

    /// ImageType values that mark diffusion images and their maps (Siemens, GE, Philips, Canon, XA enhanced).
    static let diffusionImageTypes: Set<String> = [
        "DIFFUSION", "TRACEW", "ADC", "EADC", "FA", "TENSOR", "TENSOR_B0", "DWI", "ISODWI", "ISOADC", "CALC_BVALUE",
    ]

    /// Whether the header says "diffusion" in any of the places vendors write it: an ImageType value
    /// (DIFFUSION, TRACEW, ADC, TENSOR…, FA), AcquisitionContrast DIFFUSION, a DiffusionDirectionality
    /// other than NONE, or a non-zero DiffusionGradientOrientation. All standard except Philips'
    /// private copy of the enhanced attributes, which classic Philips files also carry at the top level.
    public static func diffusionEvidence(_ header: ImageHeader) -> Bool {
        if let tokens = tokens(header.imageType),
           tokens.contains(where: { diffusionImageTypes.contains($0) || $0.hasPrefix("TENSOR") }) { return true }
        if header.acquisitionContrast == "DIFFUSION" { return true }
        if let directionality = header.diffusionDirectionality, directionality != "NONE" { return true }
        if let orientation = header.diffusionGradientOrientation, orientation.contains(where: { abs($0) > 1e-6 }) { return true }
        return false
    }

    /// ImageType values that name the complex component (Siemens M/P, Philips M/P/R/I, GE and
    /// Canon full words).
    static let complexImageTypes: [String: String] = [
        "M": "MAGNITUDE", "MAGNITUDE": "MAGNITUDE", "MAG": "MAGNITUDE", "P": "PHASE", "PHASE": "PHASE",
        "R": "REAL", "REAL": "REAL", "I": "IMAGINARY", "IMAGINARY": "IMAGINARY",
    ]

    /// The complex component from the standard places first: ImageType's values after the second
    /// (classic files of every vendor; enhanced frame types agree with (0008,9208)), else
    /// ComplexImageComponent (0008,9208) and GE's private image type, as `complexImageComponent`.
    public static func complexPart(_ header: ImageHeader) -> String? {
        if let tokens = tokens(header.imageType) {
            for token in tokens.dropFirst(2) {
                if let component = complexImageTypes[token] { return component }
            }
        }
        return header.complexImageComponent
    }

    /// How many of the acquisition attributes that every scanner writes are absent: converters and
    /// anonymizers empty headers, and an empty header is not evidence of `other`. SequenceName,
    /// descriptions and private elements are left out (de-identification removes them).
    public static func missingCount(_ header: ImageHeader) -> Int {
        let present: [Bool] = [
            header.imageType != nil, header.manufacturer != nil, header.magneticFieldStrength != nil,
            header.mrAcquisitionType != nil, header.scanningSequence != nil || header.echoPulseSequence != nil,
            header.repetitionTime != nil, header.echoTime != nil, header.flipAngle != nil,
            header.sliceThickness != nil, header.pixelSpacing != nil, header.imageOrientationPatient != nil,
        ]
        return present.filter { !$0 }.count
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
