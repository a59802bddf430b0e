import DICOM

/// The outcome of a majority vote over the images of a series (Kasmanoff et al. 2022: each
/// model votes once per image; the series takes the majority; confidence is the winner's share).
public struct Vote<Label: Hashable & Sendable>: Sendable {
    /// The label with the most votes.
    public let winner: Label
    /// The winner's share of all votes, in (0, 1].
    public let confidence: Double
    /// Votes per label.
    public let counts: [Label: Int]

    /// Counts `votes`; nil when there are none. Ties go to the label with the larger summed
    /// support (`support`, e.g. the summed class probabilities), then to the earlier label in
    /// `order`, so that the result never depends on hashing.
    public init?(_ votes: [Label], order: [Label], support: [Label: Double] = [:]) {
        guard !votes.isEmpty else { return nil }
        var counts: [Label: Int] = [:]
        for vote in votes { counts[vote, default: 0] += 1 }
        let rank = Dictionary(order.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let winner = counts.keys.max { a, b in
            let (ca, cb) = (counts[a]!, counts[b]!)
            if ca != cb { return ca < cb }
            let (sa, sb) = (support[a] ?? 0, support[b] ?? 0)
            if sa != sb { return sa < sb }
            return (rank[a] ?? Int.max) > (rank[b] ?? Int.max)
        }!
        self.winner = winner
        self.counts = counts
        self.confidence = Double(counts[winner]!) / Double(votes.count)
    }
}

extension Vote where Label == SequenceClass {
    /// The ensemble's series vote (Kasmanoff et al. 2022): the forest's and the CNN's per-image votes
    /// counted together, two per image. Ties go to the forest's summed probabilities — its tree
    /// averages are calibrated, the CNN's softmax is not (summed, it would win nearly every tie).
    ///
    /// Nothing else: rules that let the CNN overturn the majority (between header twins, and for
    /// `other`) helped only synthetic sets and were removed (docs/experiments.md, 2026-12-02).
    public static func ensemble(forest: [SequenceClass], forestSupport: [SequenceClass: Double], cnn: [SequenceClass]) -> Vote? {
        Vote(cnn + forest, order: SequenceClass.allCases, support: forestSupport)
    }
}

extension RandomForest {
    /// The forest's series vote: one vote per image for its most probable class.
    public func vote(_ headers: [ImageHeader]) -> Vote<SequenceClass>? {
        var support: [SequenceClass: Double] = [:]
        let votes = headers.map { header -> SequenceClass in
            let p = probabilities(header)
            for (index, value) in p.enumerated() { support[classes[index], default: 0] += value }
            return mostProbable(p)
        }
        return Vote(votes, order: SequenceClass.allCases, support: support)
    }
}
