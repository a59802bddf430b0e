import DICOM
import Foundation
import Testing
@testable import Classification

@Suite("Metadata features")
struct MetadataFeaturesTests {
    static let vocabulary = FeatureVocabulary(imageType: ["M", "ORIGINAL", "PRIMARY"], scanningSequence: ["GR", "IR"],
                                              sequenceVariant: ["SK", "SP"], scanOptions: ["IR"], sequenceName: ["tfl", "tfl3d"])

    static func header(_ path: String) throws -> ImageHeader {
        try #require(try ImageHeader.read(from: path).first)
    }

    @Test("Tokens become flags, unknown tokens are counted, absent attributes and numbers are −1")
    func encodesAnMPRAGE() throws {
        let path = Paths.realData + "/dcm_qa_asl__S5_T1_mprage_ns_sag_p2_iso_1.0mm_192"
        let file = try #require(try DICOMFileDiscovery.files(in: [path]).first)
        var header = try Self.header(file)
        let features = MetadataFeatures(vocabulary: Self.vocabulary)
        let row = features.encode(header)
        #expect(row.count == features.columns.count)
        func value(_ column: String) throws -> Float { row[try #require(features.columns.firstIndex(of: column))] }

        // Independent values: what dcmdump shows for this file.
        #expect(header.imageType == ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"])
        #expect(try value("image_type=ORIGINAL") == 1 && value("image_type=M") == 1)
        #expect(try value("image_type#unknown") == 2)  // ND, NORM
        #expect(try value("scanning_sequence=GR") == 1 && value("scanning_sequence=IR") == 1)
        #expect(try value("sequence_name=tfl") == 1 && value("sequence_name=tfl3d") == 1)
        #expect(try value("mr_acquisition_type") == 3)
        #expect(try value("repetition_time") == Float(try #require(header.repetitionTime)))
        #expect(try value("manufacturer=siemens") == 1 && value("manufacturer#other") == 0)
        #expect(try value("b_value") == -1)

        header.scanOptions = nil
        header.inversionTime = nil
        let changed = features.encode(header)
        let scanOptions = try #require(features.columns.firstIndex(of: "scan_options=IR"))
        #expect(changed[scanOptions] == -1 && changed[scanOptions + 1] == -1)
        #expect(changed[try #require(features.columns.firstIndex(of: "inversion_time"))] == -1)
    }

    @Test("A named ContrastBolusAgent is a feature; absent and blank read alike")
    func contrastAgent() throws {
        let features = MetadataFeatures(vocabulary: Self.vocabulary)
        let column = try #require(features.columns.firstIndex(of: "contrast_agent"))
        // dcmdump: (0018,0010) LO [Magnevist] in the RIDER post-contrast 3D GRE.
        let post = try #require(try DICOMFileDiscovery.files(in: [Paths.realData + "/dbdicom_rider__S14_sag_3d_gre_+c"]).first)
        var header = try Self.header(post)
        #expect(header.contrastBolusAgent == "Magnevist")
        #expect(features.encode(header)[column] == 1)
        header.contrastBolusAgent = "  "
        #expect(features.encode(header)[column] == 0)
        header.contrastBolusAgent = nil
        #expect(features.encode(header)[column] == 0)
    }

    @Test("SeriesDescription and ProtocolName never change the features")
    func freeTextIsNotAFeature() throws {
        let file = try #require(try DICOMFileDiscovery.files(in: [Paths.realData + "/dcm_qa_decubitus__S2_t1_fl2d_sag"]).first)
        var header = try Self.header(file)
        let features = MetadataFeatures(vocabulary: Self.vocabulary)
        let before = features.encode(header)
        header.seriesDescription = "FLAIR ax post"
        header.protocolName = "dwi"
        #expect(features.encode(header) == before)
    }

    @Test("Vendor sequence identifiers split into stable tokens",
          arguments: [("*tfl3d1_16ns", ["tfl3d", "tfl", "ns"]), ("epse2d1_72", ["epse2d", "epse"]),
                      ("T1TFE", ["t1tfe", "t"]), ("B-TFE", ["b", "tfe"]), ("3D FSPGR", ["d", "fspgr"]),
                      ("spcir_220ns", ["spcir", "ns"])])
    func sequenceNameTokens(name: String, tokens: [String]) {
        #expect(MetadataFeatures.sequenceNameTokens(name) == tokens)
    }

    @Test("The vocabulary keeps tokens that enough series carry")
    func vocabularyThreshold() throws {
        func header(_ series: String, _ imageType: [String]) throws -> ImageHeader {
            var h = try Self.header(try #require(try DICOMFileDiscovery.files(in: [Paths.realData + "/dcm_qa_decubitus__S2_t1_fl2d_sag"]).first))
            h.seriesInstanceUID = series
            h.imageType = imageType
            return h
        }
        let headers = [try header("a", ["ORIGINAL", "RARE"]), try header("a", ["ORIGINAL", "RARE"]), try header("b", ["ORIGINAL"])]
        #expect(FeatureVocabulary.build(from: headers, minimumSeries: 2).imageType == ["ORIGINAL"])
    }
}

@Suite("Metadata features, layout v2: physics that survives de-identification")
struct PhysicsFeaturesTests {
    static let features = MetadataFeatures(vocabulary: MetadataFeaturesTests.vocabulary)

    static func header(_ folder: String) throws -> ImageHeader {
        let file = try #require(try DICOMFileDiscovery.files(in: [Paths.realData + "/" + folder]).first)
        return try #require(try ImageHeader.read(from: file).first)
    }

    static func value(_ header: ImageHeader, _ column: String) throws -> Float {
        features.encode(header)[try #require(features.columns.firstIndex(of: column), "no column \(column)")]
    }

    static func oneHot(_ header: ImageHeader, _ field: String) throws -> String? {
        let row = features.encode(header)
        let hot = features.columns.indices.filter { features.columns[$0].hasPrefix(field) && row[$0] == 1 }
        #expect(hot.count <= 1)
        return hot.first.map { features.columns[$0] }
    }

    @Test("Layout v2 appends its columns to v1; v1 is what the shipped model lists")
    func layouts() throws {
        let vocabulary = MetadataFeaturesTests.vocabulary
        let v1 = MetadataFeatures(vocabulary: vocabulary, layout: .v1).columns
        let v2 = MetadataFeatures(vocabulary: vocabulary).columns
        #expect(Array(v2.prefix(v1.count)) == v1)
        #expect(v2.count - v1.count == 27)
        #expect(try MetadataFeatures(vocabulary: vocabulary, columns: v1).layout == .v1)
        #expect(try MetadataFeatures(vocabulary: vocabulary, columns: v2).layout == .v2)
        #expect(throws: MetadataFeatures.LayoutMismatch.self) {
            try MetadataFeatures(vocabulary: vocabulary, columns: v1 + ["diffusion"])
        }
        // A header encodes the same v1 values under either layout.
        let header = try Self.header("dcm_qa_xa30__S12_DWI_dir80_PA_TRACEW_mf")
        #expect(Array(MetadataFeatures(vocabulary: vocabulary).encode(header).prefix(v1.count))
            == MetadataFeatures(vocabulary: vocabulary, layout: .v1).encode(header))
    }

    @Test("diffusion: ImageType, AcquisitionContrast, DiffusionDirectionality or a gradient orientation says so")
    func diffusion() throws {
        // Classic Siemens DWI (dcmdump: ImageType ORIGINAL\PRIMARY\DIFFUSION\NONE\ND, b-value private only).
        var sagittal = try Self.header("dcm_qa_sag__S6_DWI_SagAP")
        #expect(try Self.value(sagittal, "diffusion") == 1)
        // XA enhanced trace-weighted: frame type DERIVED\PRIMARY\DIFFUSION\TRACEW, AcquisitionContrast DIFFUSION.
        var trace = try Self.header("dcm_qa_xa30__S12_DWI_dir80_PA_TRACEW_mf")
        #expect(trace.acquisitionContrast == "DIFFUSION" && trace.diffusionDirectionality == "ISOTROPIC")
        #expect(try Self.value(trace, "diffusion") == 1)
        // Each source alone is enough.
        trace.imageType = ["DERIVED", "PRIMARY"]
        #expect(try Self.value(trace, "diffusion") == 1)
        trace.acquisitionContrast = nil
        #expect(try Self.value(trace, "diffusion") == 1)  // ISOTROPIC
        trace.diffusionDirectionality = "NONE"
        #expect(try Self.value(trace, "diffusion") == 0)
        sagittal.imageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        #expect(try Self.value(sagittal, "diffusion") == 0)
        sagittal.diffusionGradientOrientation = [0, 0, 0]
        #expect(try Self.value(sagittal, "diffusion") == 0)
        sagittal.diffusionGradientOrientation = [0.6, -0.8, 0]
        #expect(try Self.value(sagittal, "diffusion") == 1)
        // A classic Philips DTI: AcquisitionContrast DIFFUSION in the private (2005,140F) sequence.
        let philips = try Self.header("dcm_qa_philips__S601_dti_ax")
        #expect(philips.acquisitionContrast == "DIFFUSION")
        #expect(try Self.value(philips, "diffusion") == 1)
        // A 2D FLASH and an XA MPRAGE: none.
        #expect(try Self.value(try Self.header("dcm_qa_decubitus__S2_t1_fl2d_sag"), "diffusion") == 0)
        #expect(try Self.value(try Self.header("dcm_qa_xa30__S5_anat-T1w_acq-tfl_mf"), "diffusion") == 0)
    }

    @Test("acquisition_contrast, echo_planar and echo_pulse from the enhanced MR attributes; −1 in classic files")
    func acquisitionContrast() throws {
        let mprage = try Self.header("dcm_qa_philips_enh__S1301_ADNI_Sag3D_MPRAGE")
        #expect(try Self.oneHot(mprage, "acquisition_contrast") == "acquisition_contrast=T1")
        #expect(try Self.value(mprage, "echo_planar") == 0)
        #expect(try Self.oneHot(mprage, "echo_pulse") == "echo_pulse=GRADIENT")
        let bold = try Self.header("dcm_qa_xa30__S7_func-bold_task-fa_run-1_mf")
        #expect(try Self.oneHot(bold, "acquisition_contrast") == "acquisition_contrast=UNKNOWN")
        #expect(try Self.value(bold, "echo_planar") == 1)
        let asl = try Self.header("dcm_qa_philips_asl__S401_3D_pCASL_6mm")
        #expect(try Self.oneHot(asl, "acquisition_contrast") == "acquisition_contrast=PERFUSION")
        #expect(try Self.oneHot(asl, "echo_pulse") == "echo_pulse=BOTH")
        let classic = try Self.header("dcm_qa_decubitus__S2_t1_fl2d_sag")
        #expect(try Self.value(classic, "acquisition_contrast=T1") == -1 && Self.value(classic, "acquisition_contrast#other") == -1)
        #expect(try Self.value(classic, "echo_planar") == -1 && Self.value(classic, "echo_pulse=SPIN") == -1)
        var odd = classic
        odd.acquisitionContrast = "SOMETHING"
        #expect(try Self.oneHot(odd, "acquisition_contrast") == "acquisition_contrast#other")
    }

    @Test("complex_part: ImageType's M/P/R/I before (0008,9208) and GE's private tag; complex_component stays as in v1")
    func complexPart() throws {
        // Classic Siemens magnitude (ImageType ORIGINAL\PRIMARY\M\NORM\DIS2D): nothing in v1's column.
        var flash = try Self.header("dcm_qa_decubitus__S2_t1_fl2d_sag")
        #expect(flash.complexImageComponent == nil)
        #expect(try Self.oneHot(flash, "complex_part") == "complex_part=MAGNITUDE")
        #expect(try Self.value(flash, "complex_component=MAGNITUDE") == -1)
        flash.imageType = ["ORIGINAL", "PRIMARY", "P", "ND"]
        #expect(try Self.oneHot(flash, "complex_part") == "complex_part=PHASE")
        flash.imageType = ["ORIGINAL", "PRIMARY", "R_IR", "R", "IR"]  // Philips real IR
        #expect(try Self.oneHot(flash, "complex_part") == "complex_part=REAL")
        flash.imageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        #expect(try Self.value(flash, "complex_part=MAGNITUDE") == -1)
        // XA enhanced field map: phase frames (frame type ORIGINAL\PRIMARY\P\NONE).
        let fieldMap = try Self.header("dcm_qa_xa30__S9_gre_field_mapping_mf")
        #expect(try Self.oneHot(fieldMap, "complex_part") == "complex_part=PHASE")
        // Classic GE: ImageType ORIGINAL\PRIMARY\OTHER, so (0043,102F) decides, as in v1.
        let ge = try Self.header("dcm_qa_ge__S2_fMRI_Multiphase_Des")
        #expect(try Self.oneHot(ge, "complex_part") == "complex_part=MAGNITUDE")
    }

    @Test("missing_count counts absent acquisition attributes: a converter's header, an enhanced file without groups")
    func missingCount() throws {
        #expect(try Self.value(try Self.header("dcm_qa_decubitus__S2_t1_fl2d_sag"), "missing_count") == 0)
        // nifti2dicom output: no TR, TE, flip angle, sequence attributes, field strength, MRAcquisitionType.
        let converted = try Self.header("example-dicom-structural__S401_anat-T1w")
        #expect(converted.repetitionTime == nil && converted.echoTime == nil)
        #expect(try Self.value(converted, "missing_count") == 6)
        var header = try Self.header("dcm_qa_decubitus__S2_t1_fl2d_sag")
        header.repetitionTime = nil
        header.sequenceName = nil  // removed by harsh de-identification: not counted
        header.seriesDescription = nil
        #expect(try Self.value(header, "missing_count") == 1)
    }

    @Test("body_part_non_head: 1 for another body part, 0 for head or free text, −1 when absent")
    func bodyPart() throws {
        let localiser = try Self.header("dbdicom_rider__S401_Ax_localiser_BH_mf")
        #expect(localiser.bodyPartExamined == "KIDNEY")
        #expect(try Self.value(localiser, "body_part_non_head") == 1)
        #expect(try Self.value(try Self.header("dbdicom_rider__S14_sag_3d_gre_+c"), "body_part_non_head") == 0)  // BRAIN
        let absent = try Self.header("dcm_qa_12bit__S4_FMRI_AX_ASC")
        #expect(absent.bodyPartExamined == nil)
        #expect(try Self.value(absent, "body_part_non_head") == -1)
    }
}

@Suite("Safetensors")
struct SafeTensorsTests {
    @Test func roundTrip() throws {
        let file = SafeTensors(tensors: ["a": .init([1.5, -2] as [Float], shape: [2, 1]), "b": .init([7] as [Int64], shape: [1])],
                               metadata: ["format": "test"])
        let decoded = try SafeTensors(data: try file.encoded(), path: "memory")
        #expect(decoded.metadata == ["format": "test"])
        #expect(decoded.tensors["a"]?.floats() == [1.5, -2] && decoded.tensors["a"]?.shape == [2, 1])
        #expect(decoded.tensors["b"]?.integers() == [7])
    }

    @Test func headerLongerThanFile() {
        var data = Data([0xFF, 0, 0, 0, 0, 0, 0, 0])
        data.append(Data("{}".utf8))
        #expect(throws: SafeTensors.Failure.self) { try SafeTensors(data: data, path: "x") }
    }
}
