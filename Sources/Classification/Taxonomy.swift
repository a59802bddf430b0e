/// The 25 brain MRI sequence classes. The raw values are part of mrsort's interface
/// (layouts, reports, model files): keep them exactly.
public enum SequenceClass: String, CaseIterable, Codable, Sendable, Hashable {
    case t1Pre = "t1_pre"
    case t1Post = "t1_post"
    case t1IACPre = "t1_iac_pre"
    case t1IACPost = "t1_iac_post"
    case t13DPre = "t1_3d_pre"
    case t13DPost = "t1_3d_post"
    case vibePre = "vibe_pre"
    case vibePost = "vibe_post"
    case t2 = "t2"
    case t2HASTE = "t2_haste"
    case t23D = "t2_3d"
    case ciss = "ciss"
    case flair = "flair"
    case flair3D = "flair_3d"
    case dwi = "dwi"
    case adc = "adc"
    case swi = "swi"
    case swiMagnitude = "swi_mag"
    case swiPhase = "swi_phase"
    case swiMIP = "swi_mip"
    case perfusion = "perfusion"
    case tof = "tof"
    case tofMIP = "tof_mip"
    case scout = "scout"
    case other = "other"

    /// Post-contrast classes, whose pre-contrast twin differs only by the injection.
    public var isPostContrast: Bool {
        switch self {
        case .t1Post, .t1IACPost, .t13DPost, .vibePost: true
        default: false
        }
    }

    /// The other class of a pre/post-contrast pair (t1_pre and t1_post, ...): the same acquisition
    /// before or after the injection. Nil outside the T1 family.
    public var contrastTwin: SequenceClass? {
        switch self {
        case .t1Pre: .t1Post
        case .t1Post: .t1Pre
        case .t1IACPre: .t1IACPost
        case .t1IACPost: .t1IACPre
        case .t13DPre: .t13DPost
        case .t13DPost: .t13DPre
        case .vibePre: .vibePost
        case .vibePost: .vibePre
        default: nil
        }
    }

    /// The classes whose headers can be the same as this one's, so that only the pixels tell them
    /// apart: the pre/post-contrast twin (the ContrastBolusAgent is left empty as often as not);
    /// SWI and its magnitude image (GE's SWAN writes both alike); and among the 2D T1 and the IAC T1,
    /// before and after contrast, all four — the same 2D T1 acquisition, the IAC one over a small
    /// field of view centred on the posterior fossa, which the metadata features do not encode and
    /// the pixels show. Empty for the other classes; the relation is symmetric.
    public var headerTwins: [SequenceClass] {
        switch self {
        case .swi: [.swiMagnitude]
        case .swiMagnitude: [.swi]
        case .t1Pre, .t1Post, .t1IACPre, .t1IACPost: Self.twoDimensionalT1.filter { $0 != self }
        default: contrastTwin.map { [$0] } ?? []
        }
    }

    private static let twoDimensionalT1: [SequenceClass] = [.t1Pre, .t1Post, .t1IACPre, .t1IACPost]
}

/// Slice orientation of a series.
public enum Orientation: String, CaseIterable, Codable, Sendable, Hashable {
    case axial, coronal, sagittal
    /// Oblique, mixed planes, or unknown.
    case oblique
}
