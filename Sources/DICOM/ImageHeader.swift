/// The attributes of one image (one frame of one file) that grouping, classification and
/// layout need. Multi-valued strings are arrays, numbers are numbers, absent is nil.
///
/// A classic file yields one header; an enhanced multi-frame file yields one per frame,
/// with the per-frame functional groups resolved (per-frame first, then shared, then the
/// top-level dataset).
public struct ImageHeader: Sendable, Hashable, Codable {
    /// The file the image came from.
    public var path: String
    /// 0-based frame within the file.
    public var frame: Int
    /// Number of frames in the file (1 for classic files).
    public var numberOfFrames: Int
    public var transferSyntaxUID: String
    public var sopClassUID: String?

    public var sopInstanceUID: String
    public var seriesInstanceUID: String
    public var studyInstanceUID: String
    public var patientID: String?
    public var studyDate: String?
    public var accessionNumber: String?
    public var modality: String?
    public var seriesNumber: Int?
    public var instanceNumber: Int?
    public var acquisitionTime: String?
    public var seriesDescription: String?
    public var protocolName: String?
    public var manufacturer: String?
    public var manufacturerModelName: String?
    public var magneticFieldStrength: Double?
    public var bodyPartExamined: String?

    public var imageType: [String]?
    public var scanningSequence: [String]?
    public var sequenceVariant: [String]?
    public var scanOptions: [String]?
    public var mrAcquisitionType: String?
    /// SequenceName (0018,0024), or PulseSequenceName (0018,9005) in enhanced files.
    public var sequenceName: String?
    public var repetitionTime: Double?
    public var echoTime: Double?
    public var inversionTime: Double?
    public var echoTrainLength: Double?
    public var flipAngle: Double?
    public var sliceThickness: Double?
    /// Row spacing, column spacing (mm).
    public var pixelSpacing: [Double]?
    /// Row direction cosines followed by column direction cosines.
    public var imageOrientationPatient: [Double]?
    public var imagePositionPatient: [Double]?
    public var photometricInterpretation: String?
    public var rows: Int?
    public var columns: Int?
    public var contrastBolusAgent: String?
    /// MAGNITUDE, PHASE, REAL or IMAGINARY: ComplexImageComponent (0008,9208), else GE's private
    /// image type (0043,102F). What tells a phase image from its magnitude twin where ImageType does not.
    public var complexImageComponent: String?
    /// Diffusion b-value (s/mm²): (0018,9087), else the vendor's private tag.
    public var diffusionBValue: Double?
    /// AcquisitionContrast (0008,9209): the enhanced frame type's, else the top level's, else the one
    /// in Philips' private MR series sequence (2005,140F), where classic Philips files keep it.
    public var acquisitionContrast: String?
    /// DiffusionDirectionality (0018,9075) (NONE, ISOTROPIC, DIRECTIONAL, BMATRIX), from the MR
    /// diffusion macro (frame, shared, top level) or the top level; Philips' private sequence last.
    public var diffusionDirectionality: String?
    /// DiffusionGradientOrientation (0018,9089), at the top level (classic Philips) or in the MR
    /// diffusion macro's gradient direction sequence.
    public var diffusionGradientOrientation: [Double]?
    /// EchoPulseSequence (0018,9008): SPIN, GRADIENT or BOTH (enhanced MR; Philips' private sequence).
    public var echoPulseSequence: String?
    /// EchoPlanarPulseSequence (0018,9018): YES or NO (enhanced MR; Philips' private sequence).
    public var echoPlanarPulseSequence: String?
    public var numberOfTemporalPositions: Int?
    public var temporalPositionIdentifier: Int?
    public var imagesInAcquisition: Int?
    /// RescaleSlope (1 when absent: a missing slope is identity, not zero).
    public var rescaleSlope: Double
    /// RescaleIntercept (0 when absent).
    public var rescaleIntercept: Double
}

extension ImageHeader {
    /// Whether the image names a ContrastBolusAgent. Absent and blank read alike: the attribute is
    /// type 2, and scanners write it empty on series without contrast as often as they omit it;
    /// so do the words sites type for "none" (`NONE`, `NO`, `N/A`, `0`, `-`, `no contrast` …).
    public var namesContrastAgent: Bool {
        guard let value = contrastBolusAgent else { return false }
        let word = value.uppercased().filter { $0.isLetter || $0.isNumber }
        return !word.isEmpty && !Self.noContrastAgent.contains(word)
    }

    /// ContrastBolusAgent values that say no agent was given, upper-cased, letters and digits only.
    static let noContrastAgent: Set<String> = [
        "NONE", "NO", "N", "NA", "0", "00", "NIL", "NULL", "NOCONTRAST", "NOAGENT", "NOTAPPLICABLE", "NOTGIVEN", "WITHOUT",
        "WITHOUTCONTRAST", "UNKNOWN", "NOCM", "NOKM",
    ]

    /// Whether the image is a Secondary Capture Image (SOP class 1.2.840.10008.5.1.4.1.1.7): a
    /// screen capture, summary page or report, without a slice plane of its own. (The multi-frame
    /// Secondary Capture classes, .7.1–.7.4, often carry exported slices and are not counted.)
    public var isSecondaryCapture: Bool {
        sopClassUID == "1.2.840.10008.5.1.4.1.1.7"
    }

    /// Reads the headers of a file (one per frame), stopping before the pixel data.
    public static func read(from path: String) throws(DICOMError) -> [ImageHeader] {
        try DICOMFile.open(path, headerOnly: true).imageHeaders()
    }
}
