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

    /// The same votes with `label` as the winner (its share as the confidence): for a decision
    /// that the counts alone do not settle.
    func won(by label: Label) -> Vote {
        let total = counts.values.reduce(0, +)
        return Vote(winner: label, confidence: Double(counts[label] ?? 0) / Double(total), counts: counts)
    }

    private init(winner: Label, confidence: Double, counts: [Label: Int]) {
        (self.winner, self.confidence, self.counts) = (winner, confidence, counts)
    }
}

extension Vote where Label == SequenceClass {
    /// The ensemble's series vote (Kasmanoff et al. 2022): the forest's and the CNN's per-image votes
    /// counted together, two per image. Ties go to the forest's summed probabilities — its tree
    /// averages are calibrated, the CNN's softmax is not (summed, it would win nearly every tie).
    ///
    /// Classes whose headers can be alike (`SequenceClass.headerTwins`: pre- and post-contrast twins,
    /// SWI and its magnitude image, 2D and IAC T1) are the exception: what tells them apart is in the
    /// pixels (the enhancement, the venous filtering, the field of view). So the CNN's summed
    /// probabilities choose between the winner and a twin when the two tie, and when the forest
    /// itself cannot tell them apart — at least `twinDoubt` of its probability for the pair on the
    /// twin — since its votes then say which pair, not which twin. The twin must have at least one
    /// image's vote: a class no image voted for is not chosen. Its share of the votes, below one
    /// half, is then the confidence, so such a series goes to review at the default threshold.
    ///
    /// `other` is the same kind of exception for every class: a series of another body part has
    /// the header of its sequence, and only the pixels show the anatomy. Where the forest gives
    /// `other` at least `otherDoubt` of its probability for it and the winner, and the CNN's own
    /// vote is `other`, the series is `other` (confidence again its share of the votes).
    public static func ensemble(forest: [SequenceClass], forestSupport: [SequenceClass: Double],
                                cnn: [SequenceClass], cnnSupport: [SequenceClass: Double]) -> Vote? {
        let votes = cnn + forest
        guard let vote = Vote(votes, order: SequenceClass.allCases, support: forestSupport) else { return nil }
        if vote.isTieBetweenHeaderTwins { return Vote(votes, order: SequenceClass.allCases, support: cnnSupport) }
        let doubted = vote.winner.headerTwins.filter { twin in
            let forestDoubts = share(of: twin, against: vote.winner, in: forestSupport) >= twinDoubt
            let cnnPrefersTwin = vote.counts[twin, default: 0] > 0 && cnnSupport[twin, default: 0] > cnnSupport[vote.winner, default: 0]
            return forestDoubts && cnnPrefersTwin
        }
        // Of several such twins (2D and IAC T1), the one the CNN supports most.
        if let twin = doubted.max(by: { cnnSupport[$0, default: 0] < cnnSupport[$1, default: 0] }) { return vote.won(by: twin) }
        // A series of another body part carries the header of the sequence it was made with (a
        // knee's T2 reads as a brain T2); without BodyPartExamined only the pixels show the anatomy.
        if vote.winner != .other, share(of: .other, against: vote.winner, in: forestSupport) >= otherDoubt,
           Vote(cnn, order: SequenceClass.allCases, support: cnnSupport)?.winner == .other {
            return vote.won(by: .other)
        }
        return vote
    }

    /// `candidate`'s share of the summed probability of it and `winner` (0 where both have none).
    private static func share(of candidate: SequenceClass, against winner: SequenceClass, in support: [SequenceClass: Double]) -> Double {
        let (w, c) = (support[winner, default: 0], support[candidate, default: 0])
        return w + c > 0 ? c / (w + c) : 0
    }

    /// The twin's least share of the forest's summed probability for a pair of header twins at
    /// which the forest is taken not to tell the twins apart (0.5 is an even split).
    public static let twinDoubt = 0.4

    /// The least share of the forest's summed probability for the winner and `other` on `other` at
    /// which the forest is taken to doubt that the series shows the head at all, so that the CNN,
    /// which sees the anatomy, decides. Lower than `twinDoubt`: the forest gives `other` little
    /// weight whenever the header is that of a brain sequence, which is what such a series has.
    public static let otherDoubt = 0.2

    /// Whether the winner shares the most votes with one of its header twins and with nothing else.
    public var isTieBetweenHeaderTwins: Bool {
        guard let top = counts[winner], counts.values.filter({ $0 == top }).count == 2 else { return false }
        return winner.headerTwins.contains { counts[$0] == top }
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
