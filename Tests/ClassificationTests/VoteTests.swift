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
        #expect(!vote.isTieBetweenContrastTwins)
    }

    @Test("A tie between pre- and post-contrast twins goes to the CNN's probabilities")
    func ensembleTwinTieToCNN() throws {
        let vote = try #require(Vote.ensemble(forest: [.vibePre, .vibePre], forestSupport: [.vibePre: 1.2, .vibePost: 0.8],
                                              cnn: [.vibePost, .vibePost], cnnSupport: [.vibePost: 1.7, .vibePre: 0.3]))
        #expect(vote.winner == .vibePost)
        #expect(vote.confidence == 0.5)
        #expect(vote.isTieBetweenContrastTwins)
        // Not a twin tie: one twin and another kind of T1, or a third class just as strong.
        #expect(Vote.ensemble(forest: [.t1Pre, .t1Pre], forestSupport: [.t1Pre: 2], cnn: [.t13DPost, .t13DPost],
                              cnnSupport: [.t13DPost: 2])?.winner == .t1Pre)
        #expect(Vote.ensemble(forest: [.t1Pre, .t1Pre], forestSupport: [.t1Pre: 2], cnn: [.t1Post, .t1Post, .flair, .flair],
                              cnnSupport: [.t1Post: 2, .flair: 2])?.isTieBetweenContrastTwins == false)
        // A majority stands whatever the supports.
        #expect(Vote.ensemble(forest: [.t1Pre, .t1Pre], forestSupport: [.t1Pre: 2], cnn: [.t1Post, .t1Pre],
                              cnnSupport: [.t1Post: 1.9])?.winner == .t1Pre)
    }

    @Test func twinsArePairs() {
        for sequence in SequenceClass.allCases {
            guard let twin = sequence.contrastTwin else { continue }
            #expect(twin.contrastTwin == sequence)
            #expect(twin.isPostContrast != sequence.isPostContrast)
        }
        #expect(SequenceClass.allCases.filter(\.isPostContrast).allSatisfy { $0.contrastTwin != nil })
    }

    @Test func noVotes() {
        #expect(Vote([SequenceClass](), order: SequenceClass.allCases) == nil)
    }
}
