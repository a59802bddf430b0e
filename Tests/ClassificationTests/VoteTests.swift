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

    @Test("The ensemble counts both models' votes, two per image; ties go to the forest's probabilities")
    func ensembleTieToForest() throws {
        // Forest FLAIR on both images, CNN T2 on both: a tie that the CNN's sharper softmax would win.
        let vote = try #require(Vote.ensemble(forest: [.flair, .flair], forestSupport: [.flair: 1.4, .t2: 0.6], cnn: [.t2, .t2]))
        #expect(vote.winner == .flair)
        #expect(vote.confidence == 0.5)
        #expect(vote.counts == [.flair: 2, .t2: 2])
        // Pre/post-contrast twins and `other` are no exception: the CNN alone never overturns the forest.
        #expect(Vote.ensemble(forest: [.vibePre, .vibePre], forestSupport: [.vibePre: 1.2, .vibePost: 0.8],
                              cnn: [.vibePost, .vibePost])?.winner == .vibePre)
        #expect(Vote.ensemble(forest: [.t2, .t2, .t2, .t2], forestSupport: [.t2: 2.6, .other: 1.3],
                              cnn: [.other, .other, .other, .other])?.winner == .t2)
        // A majority of the eight votes wins, whichever model cast it.
        let majority = try #require(Vote.ensemble(forest: [.t1Post, .t1Post, .t1Pre, .t1Pre], forestSupport: [.t1Post: 2.1, .t1Pre: 1.9],
                                                  cnn: [.t1Pre, .t1Pre, .t1Pre, .flair]))
        #expect(majority.winner == .t1Pre)
        #expect(majority.confidence == 5.0 / 8.0)
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
