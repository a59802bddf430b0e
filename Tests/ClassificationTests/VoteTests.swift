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

    @Test func noVotes() {
        #expect(Vote([SequenceClass](), order: SequenceClass.allCases) == nil)
    }
}
