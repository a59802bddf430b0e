import DICOM
import Foundation
import Testing
@testable import Classification

@Suite("Series classifier with the shipped models")
struct SeriesClassifierTests {
    @Test("The default models are found from an executable inside the checkout, also through a link to it on PATH")
    func locatesCheckoutModels() throws {
        let executable = Paths.repositoryRoot + "/.build/debug/mrsort"
        #expect(ModelDirectory.locate(executable: executable) == Paths.repositoryRoot + "/models")
        #expect(ModelDirectory.locate(executable: "/usr/bin/mrsort") == ModelDirectory.installed)
        // `ln -s …/.build/release/mrsort ~/.local/bin/`: the link leads back to the checkout.
        let bin = FileManager.default.temporaryDirectory.appendingPathComponent("mrsort-bin-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: bin) }
        try FileManager.default.createSymbolicLink(atPath: bin + "/mrsort", withDestinationPath: Paths.repositoryRoot + "/Package.swift")
        #expect(ModelDirectory.locate(executable: bin + "/mrsort") == Paths.repositoryRoot + "/models")
        // The running program by its file, not by argv[0] (which is only "mrsort" through PATH).
        #expect(ModelDirectory.runningExecutable.hasPrefix("/"))
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

@Suite("Non-brain series")
struct BodyPartTests {
    @Test(arguments: [("KNEE", "KNEE"), ("l-spine", "LSPINE"), ("Abdomen ", "ABDOMEN"), ("BRAIN", nil), ("HEAD", nil),
                      ("", nil), ("Routine protocol", nil)] as [(String, String?)])
    func nonHead(value: String, expected: String?) {
        #expect(BodyPart.nonHead(value) == expected)
    }

    @Test("Real non-brain series that say so are other; head series are left to the models")
    func realNonBrain() throws {
        let classifier = try SeriesClassifier(modelDirectory: Paths.repositoryRoot + "/models")
        let labels = try SeriesLabels(contentsOf: Paths.realData + "/labels.csv")
        var ruled = 0
        for row in labels.rows {
            let headers = try DICOMFileDiscovery.files(in: [Paths.realData + "/" + row.dir]).flatMap { try ImageHeader.read(from: $0) }
            let result = try #require(classifier.classify(headers))
            // Every series whose headers name another body part is ruled `other`, not only some.
            if let part = headers.lazy.compactMap({ BodyPart.nonHead($0.bodyPartExamined) }).first {
                #expect(row.columns["subject"] == "non-brain", "\(row.dir): a head series names \(part)")
                #expect(result.sequence == .other && result.confidence == 1 && result.rule == "BodyPartExamined=\(part)", "\(row.dir)")
                ruled += 1
            }
            if row.columns["subject"] == "head" { #expect(result.rule == nil, "\(row.dir)") }
        }
        #expect(ruled >= 3, "the real set has abdomen and kidney series that say so")
    }
}
