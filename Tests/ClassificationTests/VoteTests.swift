import Testing
@testable import Classification

@Suite("Series vote")
struct VoteTests {
    @Test func majorityAndConfidence() throws {
        let vote = try #require(Vote([SequenceClass.flair, .flair, .t2, .flair], order: SequenceClass.allCases))
        #expect(vote.winner == .flair)
        #expect(vote.confidence == 0.75)
        #expect(vote.counts == [.flair: 3, .t2: 1])
    }

    @Test func tieGoesToSupportThenOrder() throws {
        let votes: [SequenceClass] = [.t1Post, .t1Pre]
        #expect(Vote(votes, order: SequenceClass.allCases)?.winner == .t1Pre)
        #expect(Vote(votes, order: SequenceClass.allCases, support: [.t1Post: 1.2, .t1Pre: 0.8])?.winner == .t1Post)
        #expect(Vote(votes, order: SequenceClass.allCases)?.confidence == 0.5)
    }

    @Test("Ensemble ties go to the forest's probabilities")
    func ensembleTieToForest() throws {
        // Forest FLAIR on both images, CNN T2 on both: a tie that the CNN's sharper softmax would win.
        let vote = try #require(Vote.ensemble(forest: [.flair, .flair], forestSupport: [.flair: 1.4, .t2: 0.6],
                                              cnn: [.t2, .t2], cnnSupport: [.t2: 1.9, .flair: 0.1]))
        #expect(vote.winner == .flair)
        #expect(vote.confidence == 0.5)
        #expect(!vote.isTieBetweenHeaderTwins)
    }

    @Test("A tie between pre- and post-contrast twins goes to the CNN's probabilities")
    func ensembleTwinTieToCNN() throws {
        let vote = try #require(Vote.ensemble(forest: [.vibePre, .vibePre], forestSupport: [.vibePre: 1.2, .vibePost: 0.8],
                                              cnn: [.vibePost, .vibePost], cnnSupport: [.vibePost: 1.7, .vibePre: 0.3]))
        #expect(vote.winner == .vibePost)
        #expect(vote.confidence == 0.5)
        #expect(vote.isTieBetweenHeaderTwins)
        // Not a twin tie: one twin and another kind of T1, or a third class just as strong.
        #expect(Vote.ensemble(forest: [.t1Pre, .t1Pre], forestSupport: [.t1Pre: 2], cnn: [.t13DPost, .t13DPost],
                              cnnSupport: [.t13DPost: 2])?.winner == .t1Pre)
        #expect(Vote.ensemble(forest: [.t1Pre, .t1Pre], forestSupport: [.t1Pre: 2], cnn: [.t1Post, .t1Post, .flair, .flair],
                              cnnSupport: [.t1Post: 2, .flair: 2])?.isTieBetweenHeaderTwins == false)
        // A majority stands whatever the supports.
        #expect(Vote.ensemble(forest: [.t1Pre, .t1Pre], forestSupport: [.t1Pre: 2], cnn: [.t1Post, .t1Pre],
                              cnnSupport: [.t1Post: 1.9])?.winner == .t1Pre)
    }

    @Test("Where the forest cannot tell twins apart, the CNN chooses between them")
    func forestInDoubtBetweenTwins() throws {
        // Forest post-contrast on all four images but nearly even between the twins; the CNN reads
        // three images as pre-contrast and one as a 3D T1, so the forest's class has the majority.
        let cnn: [SequenceClass] = [.t1Pre, .t1Pre, .t1Pre, .t13DPre]
        let cnnSupport: [SequenceClass: Double] = [.t1Pre: 2.7, .t1Post: 0.3, .t13DPre: 1.0]
        let doubt = try #require(Vote.ensemble(forest: Array(repeating: .t1Post, count: 4),
                                               forestSupport: [.t1Post: 2.2, .t1Pre: 1.8], cnn: cnn, cnnSupport: cnnSupport))
        #expect(doubt.winner == .t1Pre)
        #expect(doubt.confidence == 3.0 / 8.0)
        #expect(doubt.counts == [.t1Post: 4, .t1Pre: 3, .t13DPre: 1])
        // A forest sure of its twin keeps it; so does a CNN that leans the forest's way.
        #expect(Vote.ensemble(forest: Array(repeating: .t1Post, count: 4), forestSupport: [.t1Post: 3.6, .t1Pre: 0.4],
                              cnn: cnn, cnnSupport: cnnSupport)?.winner == .t1Post)
        #expect(Vote.ensemble(forest: Array(repeating: .t1Post, count: 4), forestSupport: [.t1Post: 2.2, .t1Pre: 1.8],
                              cnn: cnn, cnnSupport: [.t1Pre: 1.0, .t1Post: 2.0, .t13DPre: 1.0])?.winner == .t1Post)
        // A twin that no image voted for is not chosen.
        #expect(Vote.ensemble(forest: Array(repeating: .t1Post, count: 4), forestSupport: [.t1Post: 2.2, .t1Pre: 1.8],
                              cnn: Array(repeating: .t13DPre, count: 4),
                              cnnSupport: [.t1Pre: 1.5, .t13DPre: 2.5])?.winner == .t1Post)
        // 2D and IAC T1 are header twins, before and after contrast: ties go to the CNN, here a
        // forest 2D T1 pre-contrast against a CNN IAC T1 post-contrast.
        let iac = try #require(Vote.ensemble(forest: [.t1Pre, .t1Pre], forestSupport: [.t1Pre: 1.5, .t1IACPost: 0.3],
                                             cnn: [.t1IACPost, .t1IACPost], cnnSupport: [.t1IACPost: 1.6, .t1Pre: 0.2]))
        #expect(iac.winner == .t1IACPost && iac.isTieBetweenHeaderTwins)
        // Of two doubted twins, the one the CNN supports most.
        #expect(Vote.ensemble(forest: Array(repeating: .t1Post, count: 4),
                              forestSupport: [.t1Post: 1.6, .t1Pre: 1.2, .t1IACPost: 1.2],
                              cnn: [.t1Pre, .t1IACPost, .t1IACPost, .flair],
                              cnnSupport: [.t1Pre: 1.0, .t1IACPost: 1.9, .flair: 1.0, .t1Post: 0.1])?.winner == .t1IACPost)
        // SWI and its magnitude image are header twins too (GE's SWAN writes both alike).
        #expect(Vote.ensemble(forest: Array(repeating: .swi, count: 4), forestSupport: [.swi: 2.1, .swiMagnitude: 1.9],
                              cnn: [.swiMagnitude, .swiMagnitude, .swiMagnitude, .swiMIP],
                              cnnSupport: [.swiMagnitude: 2.8, .swi: 0.2, .swiMIP: 1.0])?.winner == .swiMagnitude)
        // Classes without a twin are left to the counts.
        #expect(Vote.ensemble(forest: [.flair, .flair], forestSupport: [.flair: 1.0, .flair3D: 1.0],
                              cnn: [.flair3D, .t2], cnnSupport: [.flair3D: 1.5, .t2: 0.5])?.winner == .flair)
    }

    @Test("Where the forest doubts the series is of the head, the CNN's `other` decides")
    func forestInDoubtOfTheHead() throws {
        // A knee T2 without BodyPartExamined: the forest reads T2 with a third of the pair on
        // `other`; the CNN, which sees the anatomy, reads `other` on every image.
        let cnn = Array(repeating: SequenceClass.other, count: 4)
        let knee = try #require(Vote.ensemble(forest: Array(repeating: .t2, count: 4), forestSupport: [.t2: 2.6, .other: 1.3],
                                              cnn: cnn, cnnSupport: [.other: 3.8, .flair: 0.2]))
        #expect(knee.winner == .other)
        #expect(knee.confidence == 0.5)
        // A forest sure of its class keeps it: SWI phase images, which the CNN reads as `other`.
        #expect(Vote.ensemble(forest: Array(repeating: .swiPhase, count: 4), forestSupport: [.swiPhase: 3.9, .other: 0.1],
                              cnn: cnn, cnnSupport: [.other: 3.8, .swiPhase: 0.2])?.winner == .swiPhase)
        // So does a forest in doubt when `other` is not the CNN's own vote, only more of its
        // probability than the forest's class.
        #expect(Vote.ensemble(forest: Array(repeating: .t1Pre, count: 4), forestSupport: [.t1Pre: 1.8, .other: 0.6, .scout: 0.6],
                              cnn: [.flair3D, .flair3D, .other, .t1Post],
                              cnnSupport: [.flair3D: 1.3, .other: 0.5, .t1Post: 0.6, .t1Pre: 0.1])?.winner == .t1Pre)
    }

    @Test func twinsArePairs() {
        for sequence in SequenceClass.allCases {
            guard let twin = sequence.contrastTwin else { continue }
            #expect(twin.contrastTwin == sequence)
            #expect(twin.isPostContrast != sequence.isPostContrast)
        }
        #expect(SequenceClass.allCases.filter(\.isPostContrast).allSatisfy { $0.contrastTwin != nil })
        for sequence in SequenceClass.allCases {
            #expect(!sequence.headerTwins.contains(sequence))
            for twin in sequence.headerTwins { #expect(twin.headerTwins.contains(sequence)) }
            if let twin = sequence.contrastTwin { #expect(sequence.headerTwins.contains(twin)) }
        }
        #expect(SequenceClass.swi.headerTwins == [.swiMagnitude] && SequenceClass.t13DPre.headerTwins == [.t13DPost])
        #expect(Set(SequenceClass.t1Pre.headerTwins) == [.t1Post, .t1IACPre, .t1IACPost])
        #expect(SequenceClass.swiPhase.headerTwins.isEmpty)
    }

    @Test func noVotes() {
        #expect(Vote([SequenceClass](), order: SequenceClass.allCases) == nil)
    }
}
