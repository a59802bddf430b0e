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
