import Foundation

/// Series-level scores of one model against labels, the way Kasmanoff et al. 2022 report them
/// (Table 2): per class N, precision, recall and F1, support-weighted averages, accuracy.
public struct ModelScores: Sendable, Codable, Equatable {
    public struct ClassScore: Sendable, Codable, Equatable {
        public var sequence: SequenceClass
        /// Labelled series of this class.
        public var n: Int
        public var precision: Double
        public var recall: Double
        public var f1: Double
    }

    public var model: String
    /// Series with both a label and an answer from this model.
    public var series: Int
    public var accuracy: Double
    public var classes: [ClassScore]
    public var weightedPrecision: Double
    public var weightedRecall: Double
    public var weightedF1: Double
    /// confusion[truth][predicted] = series count, over `SequenceClass.allCases` order.
    public var confusion: [[Int]]

    /// Scores the pairs (label, answer); answers that are nil (the model did not run) are left out.
    public init(model: String, pairs: [(truth: SequenceClass, predicted: SequenceClass?)]) {
        let all = SequenceClass.allCases
        let index = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1, $0) })
        var confusion = Array(repeating: Array(repeating: 0, count: all.count), count: all.count)
        for pair in pairs {
            guard let predicted = pair.predicted, let t = index[pair.truth], let p = index[predicted] else { continue }
            confusion[t][p] += 1
        }
        let total = confusion.joined().reduce(0, +)
        let correct = all.indices.map { confusion[$0][$0] }.reduce(0, +)
        var classes: [ClassScore] = []
        for (k, sequence) in all.enumerated() {
            let n = confusion[k].reduce(0, +)
            let predicted = confusion.map { $0[k] }.reduce(0, +)
            guard n > 0 || predicted > 0 else { continue }
            let precision = predicted > 0 ? Double(confusion[k][k]) / Double(predicted) : 0
            let recall = n > 0 ? Double(confusion[k][k]) / Double(n) : 0
            let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
            classes.append(ClassScore(sequence: sequence, n: n, precision: precision, recall: recall, f1: f1))
        }
        func weighted(_ value: (ClassScore) -> Double) -> Double {
            total > 0 ? classes.map { Double($0.n) * value($0) }.reduce(0, +) / Double(total) : 0
        }
        self.model = model
        self.series = total
        self.accuracy = total > 0 ? Double(correct) / Double(total) : 0
        self.classes = classes
        self.weightedPrecision = weighted(\.precision)
        self.weightedRecall = weighted(\.recall)
        self.weightedF1 = weighted(\.f1)
        self.confusion = confusion
    }

    /// Correctly classified series of one class.
    public func correct(_ sequence: SequenceClass) -> Int {
        guard let k = SequenceClass.allCases.firstIndex(of: sequence) else { return 0 }
        return confusion[k][k]
    }

    /// The confusion matrix as an SVG picture: rows are labels, columns answers; only classes that
    /// occur in either are drawn.
    public func confusionSVG(title: String) -> String {
        let all = SequenceClass.allCases
        let shown = all.indices.filter { k in confusion[k].reduce(0, +) > 0 || confusion.map { $0[k] }.reduce(0, +) > 0 }
        let cell = 28, left = 110, top = 120
        let width = left + cell * shown.count + 20, height = top + cell * shown.count + 40
        let largest = max(1, confusion.joined().max() ?? 1)
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" font-family="sans-serif" font-size="11">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="18" font-size="14" font-weight="bold">\(Self.escape(title))</text>
        <text x="\(left)" y="\(height - 12)">answer (columns) against label (rows); accuracy \(String(format: "%.3f", accuracy)) over \(series) series</text>

        """
        for (column, k) in shown.enumerated() {
            let x = left + column * cell + cell / 2
            svg += "<text transform=\"translate(\(x + 4),\(top - 6)) rotate(-60)\">\(all[k].rawValue)</text>\n"
        }
        for (row, t) in shown.enumerated() {
            let y = top + row * cell
            svg += "<text x=\"\(left - 6)\" y=\"\(y + cell / 2 + 4)\" text-anchor=\"end\">\(all[t].rawValue)</text>\n"
            for (column, p) in shown.enumerated() {
                let count = confusion[t][p]
                let x = left + column * cell
                let shade = count == 0 ? 1.0 : 0.85 - 0.7 * Double(count) / Double(largest)
                let colour = t == p ? "rgb(\(Int(shade * 255)),\(Int(min(1, shade + 0.1) * 255)),\(Int(shade * 255)))"
                    : "rgb(255,\(Int(shade * 255)),\(Int(shade * 255)))"
                svg += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cell)\" height=\"\(cell)\" fill=\"\(colour)\" stroke=\"#ccc\"/>"
                if count > 0 {
                    svg += "<text x=\"\(x + cell / 2)\" y=\"\(y + cell / 2 + 4)\" text-anchor=\"middle\">\(count)</text>"
                }
                svg += "\n"
            }
        }
        return svg + "</svg>\n"
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }
}

/// The ensemble's answers split at a minimum confidence: the series it would act on and those it
/// would send to review, with how many of each are right.
public struct ConfidenceSplit: Sendable, Codable, Equatable {
    public var minimumConfidence: Double
    /// Series at or above the minimum, and how many of them are right.
    public var confident: Int
    public var confidentCorrect: Int
    /// Series below the minimum (review), and how many of them are right.
    public var review: Int
    public var reviewCorrect: Int

    /// Splits the pairs (label, answer with its confidence) at `minimumConfidence`.
    public init(minimumConfidence: Double, pairs: [(truth: SequenceClass, answer: SeriesClassification)]) {
        let review = pairs.filter { $0.answer.needsReview(minimumConfidence: minimumConfidence) }
        let correct = pairs.filter { $0.truth == $0.answer.sequence }.count
        self.minimumConfidence = minimumConfidence
        self.review = review.count
        self.reviewCorrect = review.filter { $0.truth == $0.answer.sequence }.count
        self.confident = pairs.count - self.review
        self.confidentCorrect = correct - self.reviewCorrect
    }

    /// Share of the confident series that are right (0 when there are none).
    public var confidentAccuracy: Double { confident == 0 ? 0 : Double(confidentCorrect) / Double(confident) }
}
