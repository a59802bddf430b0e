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
}

/// Slice orientation of a series.
public enum Orientation: String, CaseIterable, Codable, Sendable, Hashable {
    case axial, coronal, sagittal
    /// Oblique, mixed planes, or unknown.
    case oblique
}
