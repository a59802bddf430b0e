import Foundation
import Testing
@testable import Classification

@Suite("Evaluation scores (Table 2)")
struct EvaluationTests {
    /// 4 flair (3 right, 1 called t2), 2 t2 (both right), 1 dwi called adc.
    let scores = ModelScores(model: "forest", pairs: [
        (.flair, .flair), (.flair, .flair), (.flair, .flair), (.flair, .t2),
        (.t2, .t2), (.t2, .t2), (.dwi, .adc), (.adc, nil),
    ])

    @Test("Per-class precision, recall and F1 as hand-computed; answers the model did not give are left out")
    func perClass() throws {
        #expect(scores.series == 7)
        #expect(abs(scores.accuracy - 5.0 / 7.0) < 1e-12)
        let flair = try #require(scores.classes.first { $0.sequence == .flair })
        #expect(flair.n == 4 && flair.precision == 1 && flair.recall == 0.75)
        #expect(abs(flair.f1 - 2 * 0.75 / 1.75) < 1e-12)
        let t2 = try #require(scores.classes.first { $0.sequence == .t2 })
        #expect(t2.n == 2 && abs(t2.precision - 2.0 / 3.0) < 1e-12 && t2.recall == 1)
        let adc = try #require(scores.classes.first { $0.sequence == .adc })
        #expect(adc.n == 0 && adc.precision == 0)
        #expect(scores.classes.map(\.sequence) == [.t2, .flair, .dwi, .adc])
        // Weighted by N: (4·0.75 + 2·1 + 1·0) / 7.
        #expect(abs(scores.weightedRecall - 5.0 / 7.0) < 1e-12)
        #expect(scores.correct(.flair) == 3)
    }

    @Test("The confusion picture names the classes that occur and the counts")
    func picture() {
        let svg = scores.confusionSVG(title: "test")
        #expect(svg.hasPrefix("<svg"))
        #expect(svg.contains(">flair</text>") && svg.contains(">adc</text>"))
        #expect(!svg.contains(">swi</text>"))
        #expect(svg.contains(">3</text>"))
        #expect(svg.contains("accuracy 0.714 over 7 series"))
    }

    @Test("Phantoms and series with replaced pixels are told apart by the labels' subject and pixels columns")
    func reportedApart() throws {
        let text = """
        dir,series_uid,sequence,orientation,vendor,subject,pixels
        a,1.1,dwi,axial,Siemens,head,real
        b,1.2,other,axial,GE,phantom,real
        c,1.3,t2,axial,Philips,non-brain,synthetic (noise)
        """
        let directory = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try text.write(toFile: directory + "/labels.csv", atomically: true, encoding: .utf8)
        let rows = try SeriesLabels(contentsOf: directory + "/labels.csv").rows
        #expect(rows.map(\.isPhantom) == [false, true, false])
        #expect(rows.map(\.hasRealPixels) == [true, true, false])
        // Labels without those columns (the synthetic corpus's) count every series.
        let plain = SeriesLabels.Row(dir: "d", seriesUID: "1.4", sequence: .t1Pre, orientation: .axial, vendor: "GE", columns: [:])
        #expect(!plain.isPhantom && plain.hasRealPixels)
        // ../shared/realdata: the QA phantoms its README reports apart, all labelled other.
        let real = try SeriesLabels(contentsOf: Paths.realData + "/labels.csv").rows.filter(\.isPhantom)
        #expect(!real.isEmpty && real.allSatisfy { $0.sequence == .other })
    }

    @Test("Series below the minimum confidence are counted apart, as the agent sends them to review")
    func confidenceSplit() {
        func answer(_ sequence: SequenceClass, _ confidence: Double) -> SeriesClassification {
            let vote = SeriesClassification.ModelVote(sequence: sequence, confidence: confidence)
            return SeriesClassification(studyInstanceUID: "1.2", seriesInstanceUID: "1.2.\(confidence)", seriesNumber: nil,
                                        seriesDescription: nil, images: 4, sequence: sequence, orientation: .axial,
                                        confidence: confidence, orientationSource: .geometry, forest: vote, rule: nil)
        }
        let pairs: [(truth: SequenceClass, answer: SeriesClassification)] = [
            (.t1Pre, answer(.t1Pre, 1.0)), (.t1Pre, answer(.t1Post, 0.9)), (.t1Post, answer(.t1Post, 0.5)),
            (.vibePre, answer(.vibePost, 0.47)), (.t1IACPost, answer(.t1IACPost, 0.25)),
        ]
        let split = ConfidenceSplit(minimumConfidence: 0.5, pairs: pairs)
        // 0.5 itself is confident: the agent's review takes confidence strictly below the minimum.
        #expect(split.confident == 3 && split.confidentCorrect == 2)
        #expect(split.review == 2 && split.reviewCorrect == 1)
        #expect(abs(split.confidentAccuracy - 2.0 / 3.0) < 1e-12)
        // A minimum of 0 sends nothing to review.
        let none = ConfidenceSplit(minimumConfidence: 0, pairs: pairs)
        #expect(none.review == 0 && none.confident == 5 && none.confidentCorrect == 3)
        #expect(answer(.t1Pre, 0.49).needsReview(minimumConfidence: SeriesClassification.defaultMinimumConfidence))
    }
}
