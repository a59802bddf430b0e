/// BodyPartExamined values that name a part other than the head (DICOM PS3.16 CID 4031 and the
/// forms scanners write). A series that names one of them is not brain MRI, whatever its
/// contrast: the taxonomy puts it in `other`. Values not listed (HEAD, BRAIN, empty, free text)
/// decide nothing; the models do.
public enum BodyPart {
    public static let notHead: Set<String> = [
        "ABDOMEN", "ABDOMENPELVIS", "ADRENAL", "ANKLE", "ARM", "BLADDER", "BREAST", "CALF", "CARDIAC", "CHEST",
        "CHESTABDOMEN", "CHESTABDPELVIS", "CLAVICLE", "COCCYX", "COLON", "CSPINE", "ELBOW", "EXTREMITY", "FEMUR",
        "FINGER", "FOOT", "FOREARM", "GALLBLADDER", "HAND", "HEART", "HIP", "HUMERUS", "KIDNEY", "KNEE", "LEG",
        "LIVER", "LSPINE", "LUNG", "PANCREAS", "PELVIS", "PROSTATE", "RECTUM", "SACRUM", "SCAPULA", "SHOULDER",
        "SPINE", "SPLEEN", "THIGH", "THORAX", "TSPINE", "UTERUS", "WHOLEBODY", "WRIST",
    ]

    /// The normalised value when it names a body part other than the head, else nil.
    public static func nonHead(_ bodyPartExamined: String?) -> String? {
        guard let value = bodyPartExamined?.uppercased().filter({ $0.isLetter }), notHead.contains(value) else {
            return nil
        }
        return value
    }
}
