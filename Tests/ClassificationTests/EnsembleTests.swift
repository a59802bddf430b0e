import DICOM
import Foundation
import Testing
@testable import Classification

@Suite("Forest + CNN ensemble")
struct EnsembleTests {
    static func headers(_ folder: String) throws -> [ImageHeader] {
        try DICOMFileDiscovery.files(in: [Paths.realData + "/" + folder]).flatMap { try ImageHeader.read(from: $0) }
    }

    @Test("The shipped model folder loads the CNN; each model's own vote is reported")
    func bothModelsVote() throws {
        let classifier = try SeriesClassifier(modelDirectory: Paths.repositoryRoot + "/models")
        #expect(classifier.cnn != nil)
        let headers = try Self.headers("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2")
        let result = try #require(classifier.classify(headers))
        let cnn = try #require(result.cnn)
        #expect(cnn.confidence > 0 && cnn.confidence <= 1)
        // Two votes per decoded image: the ensemble's share is a multiple of 1 / (2 · decoded images).
        let decoded = min(headers.count, classifier.cnnImagesPerSeries)
        let votes = result.confidence * Double(2 * decoded)
        #expect(abs(votes - votes.rounded()) < 1e-9)
        // The winner of a two-model majority is the answer of at least one of them.
        #expect(result.sequence == cnn.sequence || result.sequence == result.forest.sequence)
        // Counted again from each model on the images the CNN reads: the CNN's own vote, and the
        // ensemble's share is the winner's votes from both models over those same images.
        let net = try #require(classifier.cnn)
        let chosen = SeriesClassifier.evenlySpaced(headers, count: classifier.cnnImagesPerSeries)
        let slices = net.preprocessing.slices(of: chosen.map { headers[$0] }).compactMap { try? $0.get() }
        try #require(slices.count == chosen.count, "every image of this series decodes")
        let predictions = net.predict(slices)
        var support: [SequenceClass: Double] = [:]
        for prediction in predictions {
            for (k, value) in prediction.sequenceProbabilities.enumerated() { support[SequenceClass.allCases[k], default: 0] += value }
        }
        let cnnVote = try #require(Vote(predictions.map(\.sequence), order: SequenceClass.allCases, support: support))
        #expect(cnn.sequence == cnnVote.winner && abs(cnn.confidence - cnnVote.confidence) < 1e-9)
        let forestVotes = chosen.map { classifier.forest.mostProbable(classifier.forest.probabilities(headers[$0])) }
        let winnerVotes = forestVotes.filter { $0 == result.sequence }.count + predictions.filter { $0.sequence == result.sequence }.count
        try #require(result.rule == nil, "no rule decided this series")
        #expect(abs(result.confidence - Double(winnerVotes) / Double(2 * chosen.count)) < 1e-9)
    }

    @Test("Series classified together get what each gets alone, with an empty series in the batch")
    func batchEqualsOneByOne() throws {
        let classifier = try SeriesClassifier(modelDirectory: Paths.repositoryRoot + "/models")
        let series = try ["dcm_qa_decubitus__S2_t1_fl2d_sag", "dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2", "dcm_qa_philips__S601_dti_ax"]
            .map { try Self.headers($0) }
        // One image of each, as the agent's short series, and the whole series.
        for batch in [series.map { Array($0.prefix(1)) }, series] {
            let together = classifier.classify(series: batch + [[]])
            #expect(together.count == batch.count + 1)
            #expect(together.last.map { $0 == nil } == true, "an empty series has no classification")
            for (headers, result) in zip(batch, together) {
                let alone = try #require(classifier.classify(headers))
                let batched = try #require(result)
                #expect(batched.sequence == alone.sequence)
                #expect(batched.orientation == alone.orientation)
                #expect(batched.forest == alone.forest)
                #expect(batched.cnn?.sequence == alone.cnn?.sequence)
                #expect(abs(batched.confidence - alone.confidence) < 1e-9)
                #expect(abs((batched.cnn?.confidence ?? 0) - (alone.cnn?.confidence ?? 0)) < 1e-5)
            }
        }
    }

    @Test("An image the CNN cannot decode keeps the forest's vote in the ensemble")
    func undecodableImagesKeepForestVote() throws {
        var classifier = try SeriesClassifier(modelDirectory: Paths.repositoryRoot + "/models")
        var headers = try Self.headers("dcm_qa_decubitus__S2_t1_fl2d_sag")
        try #require(headers.count == 12)
        classifier.cnnImagesPerSeries = headers.count
        // Five images' pixels point at a JPEG 2000 file, which mrsort does not decode; their
        // metadata are unchanged.
        let jpeg2000 = Paths.realData + "/pydicom-data__S1_MR2_UNCR/MR2_J2KR.dcm"
        for index in [1, 3, 5, 7, 9] { headers[index].path = jpeg2000 }
        let result = try #require(classifier.classify(headers))
        try #require(result.confidence < 1, "a unanimous vote would not show the count")
        // 7 decoded images with two votes each and 5 with the forest's alone: 19 votes, so the
        // winner's share is a multiple of 1/19 (it would be of 1/14 without the forest's 5).
        let votes = result.confidence * 19
        #expect(abs(votes - votes.rounded()) < 1e-9)
    }

    @Test("Without a CNN the forest decides alone and no CNN vote is reported")
    func forestOnly() throws {
        let withCNN = try SeriesClassifier(modelDirectory: Paths.repositoryRoot + "/models")
        let classifier = SeriesClassifier(forest: withCNN.forest)
        let result = try #require(classifier.classify(try Self.headers("dcm_qa_decubitus__S2_t1_fl2d_sag")))
        #expect(result.cnn == nil)
        #expect(result.sequence == result.forest.sequence && result.confidence == result.forest.confidence)
    }

    @Test("At most the configured number of images is decoded, evenly spaced with first and last kept")
    func evenlySpaced() throws {
        let headers = try Self.headers("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2")
        try #require(headers.count > 4)
        let chosen = SeriesClassifier.evenlySpaced(headers, count: 4)
        #expect(chosen.count == 4 && Set(chosen).count == 4)
        let instances = headers.compactMap(\.instanceNumber)
        if instances.count == headers.count {
            let picked = chosen.map { headers[$0].instanceNumber ?? 0 }
            #expect(picked.first == instances.min() && picked.last == instances.max())
            #expect(picked == picked.sorted())
        }
        #expect(SeriesClassifier.evenlySpaced(headers, count: headers.count + 5).count == headers.count)
    }

    @Test("Without ImageOrientationPatient the orientation comes from the CNN head")
    func orientationFromCNN() throws {
        let classifier = try SeriesClassifier(modelDirectory: Paths.repositoryRoot + "/models")
        var headers = try Self.headers("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2")
        for index in headers.indices { headers[index].imageOrientationPatient = nil }
        let result = try #require(classifier.classify(headers))
        #expect(result.orientationSource == .cnn)
        let forestOnly = SeriesClassifier(forest: classifier.forest).classify(headers)
        #expect(forestOnly?.orientationSource == .unknown && forestOnly?.orientation == .oblique)
        // A screen capture (Secondary Capture) has no plane for the CNN to read.
        for index in headers.indices { headers[index].sopClassUID = "1.2.840.10008.5.1.4.1.1.7" }
        let capture = try #require(classifier.classify(headers))
        #expect(capture.orientationSource == .unknown && capture.orientation == .oblique)
    }

    @Test("A CNN file that is present but broken is an error, not silently skipped")
    func brokenCNNFile() throws {
        let directory = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: Paths.forest, toPath: directory + "/forest.safetensors")
        try Data("not a model".utf8).write(to: URL(fileURLWithPath: directory + "/cnn.safetensors"))
        #expect { try SeriesClassifier(modelDirectory: directory) } throws: { error in
            if case ModelError.unreadable(let path, _) = error { path.hasSuffix("cnn.safetensors") } else { false }
        }
        try FileManager.default.removeItem(atPath: directory + "/cnn.safetensors")
        #expect(try SeriesClassifier(modelDirectory: directory).cnn == nil)
    }
}
