import DICOM
import Foundation
import Testing
@testable import Classification

@Suite("Study context for pre/post contrast")
struct StudyContextTests {
    /// A series of one real T1 image (sagittal 2D FLASH, TR 300, TE 2.46, flip 80) with the given
    /// number, class and contrast agent, in another plane or with other parameters where given.
    static func series(_ number: Int, _ sequence: SequenceClass, agent: String? = nil, axial: Bool = false,
                       repetitionTime: Double? = nil, flipAngle: Double? = nil) throws -> StudyContext.Series {
        let file = try #require(try DICOMFileDiscovery.files(in: [Paths.realData + "/dcm_qa_decubitus__S2_t1_fl2d_sag"]).first)
        var header = try #require(try ImageHeader.read(from: file).first)
        header.seriesNumber = number
        header.seriesInstanceUID = "1.2.3.\(number)"
        header.contrastBolusAgent = agent
        if axial { header.imageOrientationPatient = [1, 0, 0, 0, 1, 0] }
        if let repetitionTime { header.repetitionTime = repetitionTime }
        if let flipAngle { header.flipAngle = flipAngle }
        let vote = SeriesClassification.ModelVote(sequence: sequence, confidence: 0.6)
        let classification = SeriesClassification(
            studyInstanceUID: header.studyInstanceUID, seriesInstanceUID: header.seriesInstanceUID, seriesNumber: number,
            seriesDescription: nil, images: 1, sequence: sequence, orientation: .sagittal, confidence: 0.6,
            orientationSource: .geometry, forest: vote, rule: nil)
        return .init(classification: classification, headers: [header])
    }

    @Test("T1 after a perfusion series is post-contrast, before it pre-contrast")
    func afterPerfusion() throws {
        let settled = StudyContext.settle([try Self.series(5, .t1Post), try Self.series(7, .perfusion),
                                           try Self.series(9, .t13DPre), try Self.series(3, .flair)])
        #expect(settled.map(\.sequence) == [.t1Pre, .perfusion, .t13DPost, .flair])
        #expect(settled[2].rule == "study context: after perfusion series 7")
        #expect(settled[3].rule == nil)
    }

    @Test("A perfusion after a pre/post T1 pair is a second dose: the pair's post-contrast member stays post")
    func perfusionAfterPostContrast() throws {
        let settled = StudyContext.settle([try Self.series(4, .t1IACPre), try Self.series(5, .t1IACPost, axial: true),
                                           try Self.series(6, .t1IACPre), try Self.series(8, .perfusion)])
        #expect(settled.map(\.sequence) == [.t1IACPre, .t1IACPost, .t1IACPost, .perfusion])
        #expect(settled[2].rule == "study context: repeat of an earlier T1 acquisition of its kind and plane")
        // Without such a pair, every T1 before the bolus is pre-contrast, whatever the models read.
        let single = StudyContext.settle([try Self.series(4, .t1IACPre), try Self.series(5, .t1IACPost, axial: true),
                                          try Self.series(8, .perfusion)])
        #expect(single.map(\.sequence) == [.t1IACPre, .t1IACPre, .perfusion])
        #expect(single[1].rule == "study context: before the contrast")
    }

    @Test("The first series naming a ContrastBolusAgent and every T1 after it is post-contrast; the earlier ones keep the models' count, in order")
    func contrastAgent() throws {
        let settled = StudyContext.settle([try Self.series(4, .vibePre, agent: "Gadovist"), try Self.series(6, .t1Pre),
                                           try Self.series(2, .t1Pre, flipAngle: 70)])
        #expect(settled.map(\.sequence) == [.vibePost, .t1Post, .t1Pre])
        #expect(settled[1].rule == "study context: ContrastBolusAgent set in series 4")
        // The agent is often empty on the first post-contrast series: one the models read as post
        // before the named one stays post, the latest such in acquisition order.
        let unnamedFirst = StudyContext.settle([try Self.series(2, .t1Post, axial: true), try Self.series(3, .t1Pre),
                                                try Self.series(5, .vibePre, agent: "Dotarem")])
        #expect(unnamedFirst.map(\.sequence) == [.t1Pre, .t1Post, .vibePost])
        #expect(unnamedFirst[1].rule == "study context: post-contrast T1 follow pre-contrast ones (1 of 2 read as post)")
        // An acquisition of the named one's kind and plane precedes the injection, whatever the models read.
        let repeated = StudyContext.settle([try Self.series(3, .t1Post), try Self.series(8, .t1Pre, agent: "Gadovist")])
        #expect(repeated.map(\.sequence) == [.t1Pre, .t1Post])
        #expect(repeated[0].rule == "study context: before a later T1 acquisition of its kind and plane")
    }

    @Test("Without evidence, the repeat of a T1 of its kind and plane is post-contrast, whatever its parameters; another plane is left alone")
    func repeatedAcquisition() throws {
        let settled = StudyContext.settle([try Self.series(8, .t1Pre), try Self.series(3, .t1Post),
                                           try Self.series(5, .t1Post, axial: true)])
        #expect(settled.map(\.sequence) == [.t1Post, .t1Pre, .t1Post])
        #expect(settled[2].rule == nil, "a lone acquisition keeps the models' answer")
        // Fat saturation added, another TR: still the post-contrast run of the same acquisition.
        let rerun = StudyContext.settle([try Self.series(4, .t1Pre), try Self.series(9, .t1Pre, repetitionTime: 450, flipAngle: 70)])
        #expect(rerun.map(\.sequence) == [.t1Pre, .t1Post])
        #expect(rerun[1].rule == "study context: repeat of an earlier T1 acquisition of its kind and plane")
        // Of three, a rerun with the same parameters brackets the injection, not the first two.
        let bracketed = StudyContext.settle([try Self.series(2, .t1Pre, repetitionTime: 450), try Self.series(4, .t1Post),
                                             try Self.series(6, .t1Pre)])
        #expect(bracketed.map(\.sequence) == [.t1Pre, .t1Pre, .t1Post])
        #expect(bracketed[1].rule == "study context: before a later T1 acquisition of its kind and plane")
        // A plane is the nearest principal one: an axial tilted 40° (oblique by the orientation rule) pairs with an axial.
        var tilted = try Self.series(6, .vibePre)
        let angle = 40.0 * Double.pi / 180
        tilted.headers[0].imageOrientationPatient = [1, 0, 0, 0, cos(angle), sin(angle)]
        #expect(Orientation(series: tilted.headers) == .oblique)
        let obliqueAxial = StudyContext.settle([try Self.series(3, .vibePre, axial: true), tilted])
        #expect(obliqueAxial.map(\.sequence) == [.vibePre, .vibePost])
    }

    @Test("Acquisitions that differ only in flip angle are a T1 map, before the contrast, and pair with none")
    func variableFlipAngleMap() throws {
        // RIDER-like: 3D FLASH at 5 and 10 degrees (same TR and TE), then a named post-contrast 3D T1.
        let rider = StudyContext.settle([try Self.series(6, .vibePost, flipAngle: 5), try Self.series(7, .vibePost, flipAngle: 10),
                                         try Self.series(14, .t13DPre, agent: "Magnevist", repetitionTime: 8.6, flipAngle: 20)])
        #expect(rider.map(\.sequence) == [.vibePre, .vibePre, .t13DPost])
        #expect(rider[0].rule == "study context: variable-flip-angle T1 map, before the contrast")
        // Quantitative DCE: the map, then the baseline volume and its post-contrast run.
        let dce = StudyContext.settle([try Self.series(3, .vibePre, flipAngle: 2), try Self.series(4, .vibePost, flipAngle: 10),
                                       try Self.series(5, .vibePost, repetitionTime: 4.5, flipAngle: 12),
                                       try Self.series(6, .vibePre, repetitionTime: 4.5, flipAngle: 12)])
        #expect(dce.map(\.sequence) == [.vibePre, .vibePre, .vibePre, .vibePost])
    }

    @Test("The study's first acquisition after the localisers precedes the contrast unless it names the agent")
    func firstAcquisition() throws {
        // An epilepsy study: localiser, then a lone 3D T1 that both models read as post-contrast.
        let lone = StudyContext.settle([try Self.series(1, .scout), try Self.series(2, .t13DPost), try Self.series(3, .flair)])
        #expect(lone.map(\.sequence) == [.scout, .t13DPre, .flair])
        #expect(lone[1].rule == "study context: the study's first acquisition, before the contrast")
        // Later in the study the models' reading stands; so it does on a first series naming the agent.
        let later = [try Self.series(1, .scout), try Self.series(2, .flair), try Self.series(3, .t13DPost)]
        #expect(StudyContext.settle(later) == later.map(\.classification))
        let named = StudyContext.settle([try Self.series(1, .scout), try Self.series(2, .t13DPre, agent: "Gadovist")])
        #expect(named.map(\.sequence) == [.scout, .t13DPost])
        // The models' count of post-contrast series is kept: the one read as post is a later T1.
        let counted = StudyContext.settle([try Self.series(1, .scout), try Self.series(2, .t1Post), try Self.series(3, .flair),
                                           try Self.series(4, .t1IACPre, axial: true)])
        #expect(counted.map(\.sequence) == [.scout, .t1Pre, .flair, .t1IACPost])
        // Without the localisers the examination's start is not known, and the rule says nothing.
        let unknownStart = [try Self.series(2, .t13DPost), try Self.series(3, .flair)]
        #expect(StudyContext.settle(unknownStart) == unknownStart.map(\.classification))
    }

    @Test("A study without T1 twins is unchanged")
    func nothingToSettle() throws {
        let study = [try Self.series(1, .scout), try Self.series(2, .dwi)]
        #expect(StudyContext.settle(study) == study.map(\.classification))
    }

    @Test("A repeat that the forest and the CNN both read as pre-contrast stays pre; one the CNN reads as post becomes post")
    func repeatBothModelsPre() throws {
        var first = try Self.series(4, .t1Pre), second = try Self.series(8, .t1Pre)
        first.classification.cnn = .init(sequence: .t1Pre, confidence: 1)
        second.classification.cnn = .init(sequence: .t1Pre, confidence: 1)
        #expect(StudyContext.settle([first, second]).map(\.sequence) == [.t1Pre, .t1Pre])
        second.classification.cnn = .init(sequence: .t1Post, confidence: 0.8)
        let settled = StudyContext.settle([first, second])
        #expect(settled.map(\.sequence) == [.t1Pre, .t1Post])
        #expect(settled[1].rule == "study context: repeat of an earlier T1 acquisition of its kind and plane")
    }

    @Test("Without evidence, post-contrast T1 follow pre-contrast ones: the models' count is kept, their order is not")
    func contrastOrder() throws {
        // Different parameters (flip angles), so no two are repeats: the models read the earlier 2D T1
        // as post and the later one as pre, which no study can hold.
        let settled = StudyContext.settle([try Self.series(2, .t1Post, axial: true), try Self.series(4, .flair),
                                           try Self.series(7, .t1Pre), try Self.series(9, .vibePre, flipAngle: 12)])
        #expect(settled.map(\.sequence) == [.t1Pre, .flair, .t1Pre, .vibePost])
        #expect(settled[3].rule == "study context: post-contrast T1 follow pre-contrast ones (1 of 3 read as post)")
        // Answers already in order are left as they are.
        let ordered = [try Self.series(2, .t1Pre, axial: true), try Self.series(7, .t1Post)]
        #expect(StudyContext.settle(ordered) == ordered.map(\.classification))
    }

    @Test("The bounds of a repeated acquisition outweigh the models' count")
    func contrastOrderWithinRepeatBounds() throws {
        // 3 and 8 are a pair: the injection lies between them, so 8 and everything after it is post
        // although the models read only one series as post.
        let settled = StudyContext.settle([try Self.series(3, .t1Pre), try Self.series(8, .t1Pre),
                                           try Self.series(9, .t13DPre, flipAngle: 9), try Self.series(2, .t1IACPre, flipAngle: 150)])
        #expect(settled.map(\.sequence) == [.t1Pre, .t1Post, .t13DPost, .t1IACPre])
        // 5 and 8 are a pair, so 5 precedes the injection although the models' count (2 of 3)
        // would reach back to it.
        let bounded = StudyContext.settle([try Self.series(2, .t1Post, axial: true), try Self.series(5, .t1Pre),
                                           try Self.series(8, .t1Pre)])
        #expect(bounded.map(\.sequence) == [.t1Pre, .t1Pre, .t1Post])
    }
}
