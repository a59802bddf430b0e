import Foundation
import Testing
@testable import DICOM

@Suite("Header reading on real files")
struct HeaderReadingTests {
    @Test("Every file of every labelled real series reads, with the series UID of labels.csv")
    func everyRealSeriesReads() throws {
        let series = try Fixtures.labelledSeries()
        #expect(series.count >= 60)
        for (folder, seriesUID) in series {
            let files = try DICOMFileDiscovery.files(in: [Fixtures.realData + "/" + folder])
            #expect(!files.isEmpty, "\(folder) is empty")
            for file in files {
                let headers = try ImageHeader.read(from: file)
                #expect(!headers.isEmpty)
                for header in headers {
                    #expect(header.seriesInstanceUID == seriesUID, "\(file)")
                }
            }
        }
    }

    /// Attributes that hold one value for the whole file, compared with dcmdump's top level.
    static let fileLevel: [(tag: String, value: @Sendable (ImageHeader) -> [String]?)] = [
        ("(0008,0018)", { [$0.sopInstanceUID] }),
        ("(0020,000e)", { [$0.seriesInstanceUID] }),
        ("(0020,000d)", { [$0.studyInstanceUID] }),
        ("(0010,0020)", { $0.patientID.map { [$0] } }),
        ("(0008,0020)", { $0.studyDate.map { [$0] } }),
        ("(0008,0050)", { $0.accessionNumber.map { [$0] } }),
        ("(0008,0060)", { $0.modality.map { [$0] } }),
        ("(0008,103e)", { $0.seriesDescription.map { [$0] } }),
        ("(0018,1030)", { $0.protocolName.map { [$0] } }),
        ("(0008,0070)", { $0.manufacturer.map { [$0] } }),
        ("(0008,1090)", { $0.manufacturerModelName.map { [$0] } }),
        ("(0018,0015)", { $0.bodyPartExamined.map { [$0] } }),
        ("(0018,0020)", { $0.scanningSequence }),
        ("(0018,0021)", { $0.sequenceVariant }),
        ("(0018,0022)", { $0.scanOptions }),
        ("(0018,0023)", { $0.mrAcquisitionType.map { [$0] } }),
        ("(0018,0024)", { $0.sequenceName.map { [$0] } }),
        ("(0028,0004)", { $0.photometricInterpretation.map { [$0] } }),
        ("(0018,0010)", { $0.contrastBolusAgent.map { [$0] } }),
    ]

    static let fileLevelNumbers: [(tag: String, value: @Sendable (ImageHeader) -> [Double]?)] = [
        ("(0020,0011)", { $0.seriesNumber.map { [Double($0)] } }),
        ("(0020,0013)", { $0.instanceNumber.map { [Double($0)] } }),
        ("(0018,0087)", { $0.magneticFieldStrength.map { [$0] } }),
        ("(0028,0010)", { $0.rows.map { [Double($0)] } }),
        ("(0028,0011)", { $0.columns.map { [Double($0)] } }),
        ("(0020,0105)", { $0.numberOfTemporalPositions.map { [Double($0)] } }),
        ("(0020,1002)", { $0.imagesInAcquisition.map { [Double($0)] } }),
    ]

    /// Attributes that enhanced files keep per frame; compared at top level for classic files only.
    static let classicNumbers: [(tag: String, value: @Sendable (ImageHeader) -> [Double]?)] = [
        ("(0018,0080)", { $0.repetitionTime.map { [$0] } }),
        ("(0018,0081)", { $0.echoTime.map { [$0] } }),
        ("(0018,0082)", { $0.inversionTime.map { [$0] } }),
        ("(0018,0091)", { $0.echoTrainLength.map { [$0] } }),
        ("(0018,1314)", { $0.flipAngle.map { [$0] } }),
        ("(0018,0050)", { $0.sliceThickness.map { [$0] } }),
        ("(0028,0030)", { $0.pixelSpacing }),
        ("(0020,0037)", { $0.imageOrientationPatient }),
        ("(0020,0032)", { $0.imagePositionPatient }),
        ("(0028,1053)", { [$0.rescaleSlope] }),
        ("(0028,1052)", { [$0.rescaleIntercept] }),
        ("(0020,0100)", { $0.temporalPositionIdentifier.map { [Double($0)] } }),
    ]

    @Test("Attributes equal dcmdump's on the first file of every real series (Siemens, GE, Philips; classic and enhanced)")
    func attributesMatchDCMDump() throws {
        var vendors: Set<String> = []
        var enhancedFiles = 0
        for (folder, _) in try Fixtures.labelledSeries() {
            let file = try Fixtures.real(folder)
            let dump = try DCMDump.topLevel(file)
            let header = try #require(try ImageHeader.read(from: file).first)
            for (tag, value) in Self.fileLevel {
                var element = dump[tag]
            if tag == "(0018,0024)", element == nil { element = dump["(0018,9005)"] } // enhanced: PulseSequenceName
            let expected = element?.strings.flatMap { $0.allSatisfy(\.isEmpty) ? nil : $0 }
                #expect(value(header) == expected, "\(tag) in \(file)")
            }
            let isEnhanced = dump["(5200,9230)"] != nil
            if isEnhanced { enhancedFiles += 1 }
            let numeric = Self.fileLevelNumbers + (isEnhanced ? [] : Self.classicNumbers)
            for (tag, value) in numeric {
                var expected = dump[tag]?.numbers.flatMap { $0.isEmpty ? nil : $0 }
                if expected == nil, tag == "(0028,1053)" { expected = [1] } // absent slope is identity
                if expected == nil, tag == "(0028,1052)" { expected = [0] }
                #expect(value(header) == expected, "\(tag) in \(file)")
            }
            if let manufacturer = header.manufacturer?.uppercased() {
                if manufacturer.contains("SIEMENS") { vendors.insert("Siemens") }
                if manufacturer.contains("GE") { vendors.insert("GE") }
                if manufacturer.contains("PHILIPS") { vendors.insert("Philips") }
            }
        }
        #expect(vendors == ["Siemens", "GE", "Philips"])
        #expect(enhancedFiles >= 10)
    }

    @Test("Enhanced multi-frame files yield one header per frame with the frame's own functional groups",
          arguments: [
              "dcm_qa_philips_enh__S2001_fcMRI_Field_Mapping_mf",
              "dcm_qa_xa30__S10_DWI_dir80_PA_mf",
              "dbdicom_rider__S501_Cor_B0map_BH_mf",
          ])
    func enhancedPerFrame(folder: String) throws {
        let file = try Fixtures.real(folder)
        let headers = try ImageHeader.read(from: file)
        let frames = try #require(try DCMDump.topLevel(file)["(0028,0008)"]?.numbers?.first)
        #expect(headers.count == Int(frames))
        #expect(headers.map(\.frame) == Array(0..<headers.count))

        func perFrame(_ macro: String, _ tag: String) throws -> [[Double]] {
            try DCMDump.search(tag, in: file)
                .filter { $0.path == "(5200,9230).\(macro).\(tag)" }
                .compactMap(\.numbers)
        }
        let positions = try perFrame("(0020,9113)", "(0020,0032)")
        #expect(positions.count == headers.count)
        #expect(headers.map { $0.imagePositionPatient ?? [] } == positions)
        let slopes = try perFrame("(0028,9145)", "(0028,1053)")
        if !slopes.isEmpty {
            #expect(headers.map(\.rescaleSlope) == slopes.map { $0[0] })
        }
        let bValues = try perFrame("(0018,9117)", "(0018,9087)")
        if !bValues.isEmpty {
            #expect(headers.map { $0.diffusionBValue ?? -1 } == bValues.map { $0[0] })
        }
    }

    @Test("ContrastBolusAgent names an agent only when it is not a site's word for none", arguments: [
        ("Magnevist", true), ("GADOVIST 1.0", true), ("Gd", true), ("", false), ("   ", false), ("NONE", false), ("none", false),
        ("NO", false), ("N/A", false), ("0", false), ("-", false), ("No contrast", false), ("unknown", false),
    ])
    func contrastAgentWords(value: String, names: Bool) throws {
        let file = try #require(try DICOMFileDiscovery.files(in: [Fixtures.realData + "/dcm_qa_decubitus__S2_t1_fl2d_sag"]).first)
        var header = try #require(try ImageHeader.read(from: file).first)
        header.contrastBolusAgent = value
        #expect(header.namesContrastAgent == names)
        header.contrastBolusAgent = nil
        #expect(!header.namesContrastAgent)
    }

    @Test("Siemens b-value from its private tag (0019,100C)")
    func siemensPrivateBValue() throws {
        let files = try DICOMFileDiscovery.files(in: [Fixtures.realData + "/dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2"])
        var seen: Set<Double> = []
        for file in files {
            let dump = try DCMDump.topLevel(file)
            #expect(dump["(0018,9087)"] == nil)
            let expected = try #require(dump["(0019,100c)"]?.numbers?.first)
            let header = try #require(try ImageHeader.read(from: file).first)
            #expect(header.diffusionBValue == expected)
            seen.insert(expected)
        }
        #expect(seen.count > 1)
    }

    @Test("Siemens b-value from SequenceName once de-identification removed the private elements")
    func siemensBValueWithoutPrivateElements() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let files = try DICOMFileDiscovery.files(in: [Fixtures.realData + "/dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2"])
        var seen: Set<Double> = []
        for file in files {
            let expected = try #require(try ImageHeader.read(from: file).first?.diffusionBValue)
            let copy = try Fixtures.copy(file, into: directory)
            // As PS3.15's basic profile does: every private element goes, SequenceName stays.
            try Tool.run("dcmodify", ["-nb", "-ep", copy])
            #expect(try DCMDump.topLevel(copy)["(0019,100c)"] == nil)
            #expect(try ImageHeader.read(from: copy).first?.diffusionBValue == expected)
            seen.insert(expected)
        }
        #expect(seen.count > 1)
        for (name, value) in [("*ep_b1000t", 1000.0), ("ep_b0", 0), ("*re_b800#2", 800), ("*ep_b50_1000", 50)] as [(String, Double)] {
            #expect(DiffusionBValue.fromSiemensSequenceName(name) == value, "\(name)")
        }
        for name in ["*tfl3d1_16ns", "*fl2d1", "b1000", "*tse2d1_b3", nil] as [String?] {
            #expect(DiffusionBValue.fromSiemensSequenceName(name) == nil, "\(name ?? "nil")")
        }
    }

    @Test("Philips b-value from (2001,1003) when the standard attribute is absent")
    func philipsPrivateBValue() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let original = try Fixtures.real("dcm_qa_philips__S601_dti_ax")
        let file = try Fixtures.copy(original, into: directory)
        let expected = try #require(try DCMDump.topLevel(file)["(2001,1003)"]?.numbers?.first)
        try Tool.run("dcmodify", ["-nb", "-ea", "(0018,9087)", file])
        #expect(try DCMDump.topLevel(file)["(0018,9087)"] == nil)
        #expect(try ImageHeader.read(from: file).first?.diffusionBValue == expected)
    }

    @Test("GE b-value from (0043,1039), with the 10^9 mode flag removed, found through its private creator")
    func gePrivateBValue() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try Fixtures.copy(try Fixtures.real("dcm_qa_ge__S2_fMRI_Multiphase_Des"), into: directory)
        // GE writes the element for every series: 0 outside diffusion.
        let written = try #require(try DCMDump.topLevel(file)["(0043,1039)"]?.numbers?.first)
        #expect(try ImageHeader.read(from: file).first?.diffusionBValue == written)
        // Block 0x11 rather than the usual 0x10: the reader must follow the creator, not assume the block.
        try Tool.run("dcmodify", ["-nb", "-ea", "(0043,1039)", "-ea", "(0043,0010)", file])
        #expect(try ImageHeader.read(from: file).first?.diffusionBValue == nil)
        try Tool.run("dcmodify", ["-nb", "-i", "(0043,0011)=GEMS_PARM_01", "-i", "(0043,1139)=1000001000\\8\\0\\0", file])
        #expect(try ImageHeader.read(from: file).first?.diffusionBValue == 1000)
    }

    @Test("Complex image component: per frame in enhanced files, GE's private (0043,102F) in classic ones, implicit VR too")
    func complexImageComponent() throws {
        // The Philips dual-echo B0 map holds magnitude and phase frames (and MIXED at top level).
        let enhanced = try Fixtures.real("dcm_qa_philips_enh__S2001_fcMRI_Field_Mapping_mf")
        let frames = try DCMDump.search("(0008,9208)", in: enhanced)
            .filter { $0.path == "(5200,9230).(0018,9226).(0008,9208)" }
            .compactMap { $0.strings?.first }
        #expect(Set(frames) == ["MAGNITUDE", "PHASE"])
        #expect(try ImageHeader.read(from: enhanced).map(\.complexImageComponent) == frames)

        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try Fixtures.copy(try Fixtures.real("dcm_qa_ge__S2_fMRI_Multiphase_Des"), into: directory)
        #expect(try DCMDump.topLevel(file)["(0043,102f)"]?.numbers == [0])
        #expect(try ImageHeader.read(from: file).first?.complexImageComponent == "MAGNITUDE")
        try Tool.run("dcmodify", ["-nb", "-m", "(0043,102f)=1", file])
        #expect(try ImageHeader.read(from: file).first?.complexImageComponent == "PHASE")
        let implicit = directory + "/implicit.dcm"
        try Tool.run("dcmconv", ["+ti", file, implicit])
        #expect(try ImageHeader.read(from: implicit).first?.complexImageComponent == "PHASE")
        try Tool.run("dcmodify", ["-nb", "-ea", "(0043,102f)", file])
        #expect(try ImageHeader.read(from: file).first?.complexImageComponent == nil)
    }

    @Test("Enhanced MR physics attributes: per frame where the functional groups hold them, as dcmdump shows")
    func enhancedPhysicsAttributes() throws {
        let folder = Fixtures.realData + "/dcm_qa_xa30__S10_DWI_dir80_PA_mf"
        for file in try DICOMFileDiscovery.files(in: [folder]).prefix(3) {
            let headers = try ImageHeader.read(from: file)
            let directionality = try DCMDump.search("(0018,9075)", in: file)
                .filter { $0.path == "(5200,9230).(0018,9117).(0018,9075)" }.compactMap { $0.strings?.first }
            #expect(headers.map(\.diffusionDirectionality) == directionality)
            let orientations = try DCMDump.search("(0018,9089)", in: file)
                .filter { $0.path == "(5200,9230).(0018,9117).(0018,9076).(0018,9089)" }.compactMap(\.numbers)
            #expect(headers.compactMap(\.diffusionGradientOrientation) == orientations)
            let contrast = try DCMDump.search("(0008,9209)", in: file)
                .filter { $0.path == "(5200,9230).(0018,9226).(0008,9209)" }.compactMap { $0.strings?.first }
            #expect(headers.map(\.acquisitionContrast) == contrast)
            let top = try DCMDump.topLevel(file)
            #expect(headers.first?.echoPlanarPulseSequence == top["(0018,9018)"]?.strings?.first)
            #expect(headers.first?.echoPulseSequence == top["(0018,9008)"]?.strings?.first)
        }
    }

    @Test("Classic Philips: the enhanced attributes from the private (2005,140F) sequence, the gradient at the top level")
    func philipsPrivateSeries() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try Fixtures.copy(try Fixtures.real("dcm_qa_philips__S601_dti_ax"), into: directory)
        let nested = Dictionary(try DCMDump.search("(2005,140f)", in: file).map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(nested["(2005,140f)"] != nil)
        var header = try #require(try ImageHeader.read(from: file).first)
        #expect(header.acquisitionContrast == "DIFFUSION")
        #expect(header.echoPlanarPulseSequence == "YES" && header.echoPulseSequence == "SPIN")
        #expect(header.diffusionDirectionality == "NONE")
        #expect(header.diffusionGradientOrientation == (try DCMDump.topLevel(file))["(0018,9089)"]?.numbers)
        // De-identification removes the private sequence; the standard top-level gradient stays.
        try Tool.run("dcmodify", ["-nb", "-ea", "(2005,140f)", file])
        header = try #require(try ImageHeader.read(from: file).first)
        #expect(header.acquisitionContrast == nil && header.echoPlanarPulseSequence == nil && header.diffusionDirectionality == nil)
        #expect(header.diffusionGradientOrientation != nil)
    }

    @Test("Absent attributes are nil, not zero")
    func absentIsNil() throws {
        let file = try Fixtures.real("dcm_qa_decubitus__S2_t1_fl2d_sag")
        let dump = try DCMDump.topLevel(file)
        #expect(dump["(0018,0082)"] == nil && dump["(0018,0010)"] == nil)
        let header = try #require(try ImageHeader.read(from: file).first)
        #expect(header.inversionTime == nil)
        #expect(header.contrastBolusAgent == nil)
        #expect(header.diffusionBValue == nil)
    }
}
