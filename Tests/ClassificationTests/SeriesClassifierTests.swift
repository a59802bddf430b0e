import DICOM
import Foundation
import Testing
@testable import Classification

@Suite("Series classifier with the shipped models")
struct SeriesClassifierTests {
    @Test("The default models are found from an executable inside the checkout")
    func locatesCheckoutModels() {
        let executable = Paths.repositoryRoot + "/.build/debug/mrsort"
        #expect(ModelDirectory.locate(executable: executable) == Paths.repositoryRoot + "/models")
        #expect(ModelDirectory.locate(executable: "/usr/bin/mrsort") == ModelDirectory.installed)
    }

    @Test("A real diffusion series and its ADC map are told apart, with geometry for the orientation",
          arguments: [("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2", SequenceClass.dwi),
                      ("dcm_qa_xa30__S11_DWI_dir80_PA_ADC_mf", .adc)])
    func realDiffusion(folder: String, expected: SequenceClass) throws {
        let classifier = try SeriesClassifier(modelDirectory: Paths.repositoryRoot + "/models")
        let headers = try DICOMFileDiscovery.files(in: [Paths.realData + "/" + folder]).flatMap { try ImageHeader.read(from: $0) }
        let result = try #require(classifier.classify(headers))
        #expect(result.sequence == expected)
        #expect(result.orientation == .axial && result.orientationSource == .geometry)
        #expect(result.images == headers.count)
        #expect(result.confidence > 0.5 && result.confidence <= 1)
        #expect(result.forest.sequence == result.sequence)
    }

    @Test func noImagesNoAnswer() throws {
        let classifier = try SeriesClassifier(modelDirectory: Paths.repositoryRoot + "/models")
        #expect(classifier.classify([]) == nil)
    }
}
