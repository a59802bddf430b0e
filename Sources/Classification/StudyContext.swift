import DICOM

/// Settles pre- versus post-contrast T1 within a study, which the paper's models found hardest
/// (t1_post F1 0.83, vibe_post 0.64) and which metadata alone cannot tell when
/// ContrastBolusAgent is missing. Within one study, in acquisition order:
///
/// 1. the contrast was given no later than the first perfusion (DSC) series, which is the bolus,
///    and no later than the first series that names a ContrastBolusAgent — not necessarily just
///    before it: the agent is often left empty on the first post-contrast series. The T1 series
///    before a perfusion are pre-contrast unless rule 2 finds an earlier injection (a perfusion run
///    after the post-contrast series is a second dose). It was given after the study's first
///    acquisition (the first series after the localisers, where they are there) unless that names
///    the agent: an examination does not begin with the injection, so a T1 acquired first is
///    pre-contrast;
/// 2. up to that series, of two T1 acquisitions of the same kind in the same plane (the nearest
///    principal plane: a tilted axial is axial) the later one follows the injection — a
///    post-contrast series is most often the pre-contrast one run again, if not always with the
///    same parameters (fat saturation added, another variant) — unless both the forest and the CNN
///    read it as pre-contrast (then it is a repeated acquisition, as research protocols and motion
///    make). Of three or more, a rerun with the same parameters brackets the injection where there
///    is one. Acquisitions that differ only in flip angle (the same TR and TE) are a
///    variable-flip-angle T1 map, which is made before the injection (it is the baseline of a
///    dynamic contrast study): pre-contrast, and no pair;
/// 3. contrast is given once and stays: every T1 after a post-contrast one is post-contrast too.
///    Where the models' answers break that order (an earlier series read as post, a later one as
///    pre), the models' count of post-contrast T1 series among those rules 1 and 2 leave open is
///    kept and the last ones in acquisition order are post.
///
/// A T1-family series (2D, IAC, 3D, VIBE) after the injection is post-contrast, one before it
/// pre-contrast; the rule that decided is recorded in `SeriesClassification.rule`.
public enum StudyContext {
    /// The series of one study, each with its images, as classified.
    public struct Series: Sendable {
        public var classification: SeriesClassification
        public var headers: [ImageHeader]

        public init(classification: SeriesClassification, headers: [ImageHeader]) {
            self.classification = classification
            self.headers = headers
        }
    }

    /// The pre-contrast class of a T1-family class (itself when already pre), else nil.
    static func family(_ sequence: SequenceClass) -> SequenceClass? {
        sequence.isPostContrast ? sequence.contrastTwin : sequence.contrastTwin.map { _ in sequence }
    }

    /// Applies the rules to the series of one study and returns them with pre/post settled.
    public static func settle(_ study: [Series]) -> [SeriesClassification] {
        let order = study.indices.sorted { acquisitionKey(study[$0]) < acquisitionKey(study[$1]) }
        var results = study.map(\.classification)
        // The injection lies after `earliest` and no later than `latest` (acquisition positions).
        var earliest = -1, latest = order.count
        var bolus: Int?
        for (position, index) in order.enumerated() {
            let series = study[index]
            let number = series.classification.seriesNumber.map(String.init) ?? "?"
            if series.classification.sequence == .perfusion {
                // The bolus: the T1 series after it are post-contrast. The ones before it are
                // pre-contrast unless rule 2 finds an earlier injection (a perfusion after the
                // post-contrast series is a second dose).
                bolus = position
                latest = position
                setContrast(&results, order: order, from: position, rule: { _ in "study context: after perfusion series \(number)" })
                break
            }
            if series.headers.contains(where: \.namesContrastAgent) {
                // A named agent proves this series and the later ones post-contrast; the ones before
                // it may be post-contrast too (the agent is often left empty), so rules 2 and 3 settle them.
                latest = position
                setContrast(&results, order: order, from: position, rule: { _ in "study context: ContrastBolusAgent set in series \(number)" })
                break
            }
        }
        // The contrast is given during the examination, after its first acquisition. Which one was
        // first is known only where the examination's start, its localisers, is there: an export
        // often leaves them out, and the agent may see a later series before the earlier ones.
        let firstAcquisition = order.indices.first { results[order[$0]].sequence != .scout }
            .flatMap { $0 > 0 ? $0 : nil }
        if let firstAcquisition, firstAcquisition < latest, family(results[order[firstAcquisition]].sequence) != nil {
            earliest = firstAcquisition
        }
        // Repeated T1 acquisitions up to the first named agent: the later one post-contrast. A series
        // without a plane of its own (no geometry, mixed planes) pairs with none.
        var groups: [String: [Int]] = [:]
        for (position, index) in order.enumerated() where position <= latest {
            guard let pre = family(results[index].sequence), let plane = Orientation.nearestPlane(series: study[index].headers) else { continue }
            groups[pre.rawValue + "|" + plane.rawValue, default: []].append(position)
        }
        let named = latest
        for group in groups.values.sorted(by: { $0[0] < $1[0] }) where group.count >= 2 {
            let mapping = variableFlipAngleSet(group.map { study[order[$0]].headers })
            for (member, position) in group.enumerated() where mapping.contains(member) && position < named {
                let index = order[position]
                guard let pre = family(results[index].sequence) else { continue }
                earliest = max(earliest, position)
                relabel(&results[index], as: pre, rule: "study context: variable-flip-angle T1 map, before the contrast")
            }
            let positions = group.enumerated().filter { !mapping.contains($0.offset) }.map(\.element)
            guard positions.count >= 2 else { continue }
            // The pair that brackets the injection: the first two with the same parameters where
            // there are such (a rerun), else the first two; the ones between them are left open.
            let keys = positions.map { parameterKey(study[order[$0]].headers) }
            let rerun = keys.indices.lazy.compactMap { i in keys[(i + 1)...].firstIndex(of: keys[i]).map { (i, $0) } }.first
            let (lastPre, firstPost) = rerun ?? (0, 1)
            for (rank, position) in positions.enumerated() where rank <= lastPre || rank >= firstPost {
                let index = order[position]
                guard let pre = family(results[index].sequence), let post = pre.contrastTwin else { continue }
                let isPost = rank >= firstPost
                // A repeat that both models read as pre-contrast is a repeat (motion, a second run),
                // not the injection: the rule settles only what the models leave open.
                if isPost, let cnn = results[index].cnn, !cnn.sequence.isPostContrast, !results[index].forest.sequence.isPostContrast {
                    continue
                }
                if isPost { latest = min(latest, position) } else { earliest = max(earliest, position) }
                relabel(&results[index], as: isPost ? post : pre,
                        rule: isPost ? "study context: repeat of an earlier T1 acquisition of its kind and plane"
                                     : "study context: before a later T1 acquisition of its kind and plane")
            }
        }
        if let bolus, latest == bolus {
            setContrast(&results, order: order, from: 0, before: bolus, rule: { _ in nil })
        } else if earliest < latest {
            keepContrastOrder(&results, order: order, after: earliest, noLaterThan: latest, firstAcquisition: firstAcquisition)
        }
        return results
    }

    /// Rule 3: the T1 series after the injection are the last ones in acquisition order, as many as
    /// the models read as post-contrast, the injection kept within (`after`, `noLaterThan`].
    /// `firstAcquisition` (a position) is named as the reason where it is the series set pre-contrast.
    private static func keepContrastOrder(_ results: inout [SeriesClassification], order: [Int], after: Int, noLaterThan: Int,
                                          firstAcquisition: Int?) {
        let t1 = order.enumerated().filter { family(results[$0.element].sequence) != nil }
        // The T1 series from `noLaterThan` on are post-contrast whatever the models read; the models'
        // count decides among the ones before.
        let open = t1.filter { $0.offset < noLaterThan }
        let post = open.filter { results[$0.element].sequence.isPostContrast }.count
        // The first T1 (by its index in `t1`) after the injection, moved into the bounds.
        var first = max(open.count - post, t1.firstIndex { $0.offset > after } ?? t1.count)
        first = min(first, t1.firstIndex { $0.offset >= noLaterThan } ?? t1.count)
        for (rank, (position, index)) in t1.enumerated() {
            let isPost = rank >= first
            guard results[index].sequence.isPostContrast != isPost, let pre = family(results[index].sequence),
                  let twin = pre.contrastTwin else { continue }
            relabel(&results[index], as: isPost ? twin : pre,
                    rule: position == firstAcquisition ? "study context: the study's first acquisition, before the contrast"
                        : "study context: post-contrast T1 follow pre-contrast ones (\(post) of \(open.count) read as post)")
        }
    }

    /// Sets the T1-family series from acquisition position `from` on (up to `end`, excluded):
    /// post-contrast where `rule` gives a reason for their position, pre-contrast where it gives none.
    private static func setContrast(_ results: inout [SeriesClassification], order: [Int], from: Int, before end: Int = .max,
                                    rule: (Int) -> String?) {
        for (position, index) in order.enumerated() where position >= from && position < end {
            guard let pre = family(results[index].sequence), let post = pre.contrastTwin else { continue }
            if let reason = rule(position) {
                relabel(&results[index], as: post, rule: reason)
            } else {
                relabel(&results[index], as: pre, rule: "study context: before the contrast")
            }
        }
    }

    private static func relabel(_ result: inout SeriesClassification, as sequence: SequenceClass, rule: String) {
        guard result.sequence != sequence else { return }
        result.sequence = sequence
        result.rule = rule
    }

    /// Acquisition order: SeriesNumber, then AcquisitionTime.
    private static func acquisitionKey(_ series: Series) -> (Int, Double) {
        let first = series.headers.first
        return (first?.seriesNumber ?? Int.max, first?.acquisitionTime.flatMap(Double.init) ?? .infinity)
    }

    /// A timing parameter in tenths (ms or degrees), so that values written with different
    /// precision compare equal.
    private static func tenths(_ value: Double?) -> Int? {
        value.map { Int(($0 * 10).rounded()) }
    }

    /// What makes two acquisitions of one kind and plane a rerun: the timing parameters, rounded.
    private static func parameterKey(_ headers: [ImageHeader]) -> String {
        let first = headers.first
        let timing = [first?.repetitionTime, first?.echoTime, first?.inversionTime, first?.flipAngle]
        return (timing.map { tenths($0).map(String.init) ?? "-" } + [first?.mrAcquisitionType ?? "-"]).joined(separator: "|")
    }

    /// The members (indices into `series`) that share TR and TE with another member at a different
    /// flip angle: the series of a variable-flip-angle T1 map.
    static func variableFlipAngleSet(_ series: [[ImageHeader]]) -> Set<Int> {
        let timing = series.map { headers -> (tr: Int, te: Int, flip: Int)? in
            guard let first = headers.first, let tr = tenths(first.repetitionTime), let te = tenths(first.echoTime),
                  let flip = tenths(first.flipAngle) else { return nil }
            return (tr, te, flip)
        }
        var members = Set<Int>()
        for (i, a) in timing.enumerated() {
            guard let a else { continue }
            for (j, b) in timing.enumerated() where j != i {
                if let b, a.tr == b.tr, a.te == b.te, a.flip != b.flip { members.insert(i) }
            }
        }
        return members
    }
}
