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
}
