/// A DICOM attribute tag: (group, element).
public struct Tag: Hashable, Sendable, CustomStringConvertible {
    public let group: UInt16
    public let element: UInt16

    public init(_ group: UInt16, _ element: UInt16) {
        self.group = group
        self.element = element
    }

    /// `(0008,103E)`, as DICOM tools print tags.
    public var description: String {
        "(" + Self.hex(group) + "," + Self.hex(element) + ")"
    }

    private static func hex(_ value: UInt16) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: 4 - digits.count) + digits
    }
}

extension Tag {
    // File meta information
    public static let mediaStorageSOPClassUID = Tag(0x0002, 0x0002)
    public static let transferSyntaxUID = Tag(0x0002, 0x0010)

    // Identification and hierarchy
    public static let specificCharacterSet = Tag(0x0008, 0x0005)
    public static let imageType = Tag(0x0008, 0x0008)
    public static let sopClassUID = Tag(0x0008, 0x0016)
    public static let sopInstanceUID = Tag(0x0008, 0x0018)
    public static let studyDate = Tag(0x0008, 0x0020)
    public static let acquisitionTime = Tag(0x0008, 0x0032)
    public static let accessionNumber = Tag(0x0008, 0x0050)
    public static let modality = Tag(0x0008, 0x0060)
    public static let manufacturer = Tag(0x0008, 0x0070)
    public static let seriesDescription = Tag(0x0008, 0x103E)
    public static let manufacturerModelName = Tag(0x0008, 0x1090)
    public static let frameType = Tag(0x0008, 0x9007)
    public static let complexImageComponent = Tag(0x0008, 0x9208)
    public static let acquisitionContrast = Tag(0x0008, 0x9209)
    public static let patientID = Tag(0x0010, 0x0020)
    public static let studyInstanceUID = Tag(0x0020, 0x000D)
    public static let seriesInstanceUID = Tag(0x0020, 0x000E)
    public static let seriesNumber = Tag(0x0020, 0x0011)
    public static let instanceNumber = Tag(0x0020, 0x0013)
    public static let temporalPositionIdentifier = Tag(0x0020, 0x0100)
    public static let numberOfTemporalPositions = Tag(0x0020, 0x0105)
    public static let imagesInAcquisition = Tag(0x0020, 0x1002)
    public static let imagePositionPatient = Tag(0x0020, 0x0032)
    public static let imageOrientationPatient = Tag(0x0020, 0x0037)
    public static let temporalPositionIndex = Tag(0x0020, 0x9128)

    // Acquisition
    public static let contrastBolusAgent = Tag(0x0018, 0x0010)
    public static let bodyPartExamined = Tag(0x0018, 0x0015)
    public static let scanningSequence = Tag(0x0018, 0x0020)
    public static let sequenceVariant = Tag(0x0018, 0x0021)
    public static let scanOptions = Tag(0x0018, 0x0022)
    public static let mrAcquisitionType = Tag(0x0018, 0x0023)
    public static let sequenceName = Tag(0x0018, 0x0024)
    public static let sliceThickness = Tag(0x0018, 0x0050)
    public static let repetitionTime = Tag(0x0018, 0x0080)
    public static let echoTime = Tag(0x0018, 0x0081)
    public static let inversionTime = Tag(0x0018, 0x0082)
    public static let magneticFieldStrength = Tag(0x0018, 0x0087)
    public static let echoTrainLength = Tag(0x0018, 0x0091)
    public static let protocolName = Tag(0x0018, 0x1030)
    public static let flipAngle = Tag(0x0018, 0x1314)
    public static let pulseSequenceName = Tag(0x0018, 0x9005)
    public static let echoPulseSequence = Tag(0x0018, 0x9008)
    public static let echoPlanarPulseSequence = Tag(0x0018, 0x9018)
    public static let diffusionDirectionality = Tag(0x0018, 0x9075)
    public static let diffusionGradientDirectionSequence = Tag(0x0018, 0x9076)
    public static let diffusionGradientOrientation = Tag(0x0018, 0x9089)
    public static let diffusionBValue = Tag(0x0018, 0x9087)
    public static let inversionTimes = Tag(0x0018, 0x9079)
    public static let effectiveEchoTime = Tag(0x0018, 0x9082)

    // Image pixel
    public static let samplesPerPixel = Tag(0x0028, 0x0002)
    public static let photometricInterpretation = Tag(0x0028, 0x0004)
    public static let numberOfFrames = Tag(0x0028, 0x0008)
    public static let rows = Tag(0x0028, 0x0010)
    public static let columns = Tag(0x0028, 0x0011)
    public static let pixelSpacing = Tag(0x0028, 0x0030)
    public static let rescaleIntercept = Tag(0x0028, 0x1052)
    public static let rescaleSlope = Tag(0x0028, 0x1053)
    public static let pixelData = Tag(0x7FE0, 0x0010)

    // Enhanced multi-frame functional groups (PS3.3 C.7.6.16)
    public static let sharedFunctionalGroupsSequence = Tag(0x5200, 0x9229)
    public static let perFrameFunctionalGroupsSequence = Tag(0x5200, 0x9230)
    public static let pixelMeasuresSequence = Tag(0x0028, 0x9110)
    public static let planePositionSequence = Tag(0x0020, 0x9113)
    public static let planeOrientationSequence = Tag(0x0020, 0x9116)
    public static let frameContentSequence = Tag(0x0020, 0x9111)
    public static let pixelValueTransformationSequence = Tag(0x0028, 0x9145)
    public static let mrImageFrameTypeSequence = Tag(0x0018, 0x9226)
    public static let mrTimingAndRelatedParametersSequence = Tag(0x0018, 0x9112)
    public static let mrEchoSequence = Tag(0x0018, 0x9114)
    public static let mrModifierSequence = Tag(0x0018, 0x9115)
    public static let mrDiffusionSequence = Tag(0x0018, 0x9117)
    public static let mrMetaboliteMapSequence = Tag(0x0018, 0x9152)
    public static let mrFOVGeometrySequence = Tag(0x0018, 0x9107)
    public static let mrAveragesSequence = Tag(0x0018, 0x9119)
    public static let mrImagingModifierSequence = Tag(0x0018, 0x9006)

    // Attribute modification history (PS3.3 C.12.1: Original Attributes Sequence)
    public static let originalAttributesSequence = Tag(0x0400, 0x0561)
    public static let modifiedAttributesSequence = Tag(0x0400, 0x0550)
    public static let attributeModificationDateTime = Tag(0x0400, 0x0562)
    public static let modifyingSystem = Tag(0x0400, 0x0563)
    public static let sourceOfPreviousValues = Tag(0x0400, 0x0564)
    public static let reasonForTheAttributeModification = Tag(0x0400, 0x0565)
}
