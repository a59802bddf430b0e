import ArgumentParser
import DICOM
import Foundation

/// `mrsort inspect`: the attributes mrsort reads from each image, as a table or JSON.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the attributes mrsort reads from DICOM files (one row per image or frame)."
    )

    @Argument(help: "DICOM files or directories (searched recursively).")
    var paths: [String]

    @Flag(help: "Print JSON (one object per image) instead of a table.")
    var json = false

    func run() throws {
        var headers: [ImageHeader] = []
        var failures: [DICOMError] = []
        for file in try DICOMFileDiscovery.files(in: paths) {
            do {
                headers += try ImageHeader.read(from: file)
            } catch {
                failures.append(error)
            }
        }
        guard !headers.isEmpty || !failures.isEmpty else {
            throw CommandFailure("no files found in " + paths.joined(separator: ", "), status: ExitStatus.noInput)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(InspectReport(images: headers, errors: failures.map(FileFailure.init)))
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(InspectTable(headers: headers).render())
            for failure in failures {
                FileHandle.standardError.write(Data("skipped \(failure)\n".utf8))
            }
        }
        if headers.isEmpty && !failures.isEmpty {
            throw ExitCode(ExitStatus.dataError)
        }
    }
}

struct InspectReport: Encodable {
    let images: [ImageHeader]
    let errors: [FileFailure]
}

/// A file that could not be read, for machine-readable output.
struct FileFailure: Encodable {
    let path: String
    let reason: String

    init(_ error: DICOMError) {
        path = error.path
        reason = error.reason
    }
}

/// One block per image: attribute name, value.
struct InspectTable {
    let headers: [ImageHeader]

    func render() -> String {
        headers.map { header in
            var lines = ["== \(header.path)" + (header.numberOfFrames > 1 ? " [frame \(header.frame + 1)/\(header.numberOfFrames)]" : "")]
            for (name, value) in Self.rows(header) where value != nil {
                lines.append("  " + name.padding(toLength: 28, withPad: " ", startingAt: 0) + value!)
            }
            return lines.joined(separator: "\n")
        }.joined(separator: "\n")
    }

    static func rows(_ h: ImageHeader) -> [(String, String?)] {
        func list(_ values: [String]?) -> String? { values?.joined(separator: "\\") }
        func numbers(_ values: [Double]?) -> String? { values?.map(format).joined(separator: "\\") }
        func format(_ value: Double) -> String {
            value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value)
        }
        return [
            ("SOPInstanceUID", h.sopInstanceUID),
            ("SeriesInstanceUID", h.seriesInstanceUID),
            ("StudyInstanceUID", h.studyInstanceUID),
            ("SOPClassUID", h.sopClassUID),
            ("TransferSyntaxUID", h.transferSyntaxUID),
            ("PatientID", h.patientID),
            ("StudyDate", h.studyDate),
            ("AccessionNumber", h.accessionNumber),
            ("Modality", h.modality),
            ("SeriesNumber", h.seriesNumber.map(String.init)),
            ("InstanceNumber", h.instanceNumber.map(String.init)),
            ("AcquisitionTime", h.acquisitionTime),
            ("SeriesDescription", h.seriesDescription),
            ("ProtocolName", h.protocolName),
            ("Manufacturer", h.manufacturer),
            ("ManufacturerModelName", h.manufacturerModelName),
            ("MagneticFieldStrength", h.magneticFieldStrength.map(format)),
            ("BodyPartExamined", h.bodyPartExamined),
            ("ImageType", list(h.imageType)),
            ("ScanningSequence", list(h.scanningSequence)),
            ("SequenceVariant", list(h.sequenceVariant)),
            ("ScanOptions", list(h.scanOptions)),
            ("MRAcquisitionType", h.mrAcquisitionType),
            ("SequenceName", h.sequenceName),
            ("RepetitionTime", h.repetitionTime.map(format)),
            ("EchoTime", h.echoTime.map(format)),
            ("InversionTime", h.inversionTime.map(format)),
            ("EchoTrainLength", h.echoTrainLength.map(format)),
            ("FlipAngle", h.flipAngle.map(format)),
            ("SliceThickness", h.sliceThickness.map(format)),
            ("PixelSpacing", numbers(h.pixelSpacing)),
            ("ImageOrientationPatient", numbers(h.imageOrientationPatient)),
            ("ImagePositionPatient", numbers(h.imagePositionPatient)),
            ("PhotometricInterpretation", h.photometricInterpretation),
            ("Rows", h.rows.map(String.init)),
            ("Columns", h.columns.map(String.init)),
            ("NumberOfFrames", String(h.numberOfFrames)),
            ("ContrastBolusAgent", h.contrastBolusAgent),
            ("DiffusionBValue", h.diffusionBValue.map(format)),
            ("NumberOfTemporalPositions", h.numberOfTemporalPositions.map(String.init)),
            ("TemporalPositionIdentifier", h.temporalPositionIdentifier.map(String.init)),
            ("ImagesInAcquisition", h.imagesInAcquisition.map(String.init)),
            ("RescaleSlope", format(h.rescaleSlope)),
            ("RescaleIntercept", format(h.rescaleIntercept)),
        ]
    }
}
