import DICOM

extension Orientation {
    /// A plane dominates when the slice normal's largest component is at least this (about 37°
    /// from the axis); below it the slice is oblique. The labels of `../shared/realdata` use the same rule.
    public static let dominanceThreshold = 0.8

    /// The plane of one image from ImageOrientationPatient: the slice normal (row × column
    /// direction) along x is sagittal, along y coronal, along z axial. nil without a usable IOP.
    public init?(imageOrientationPatient iop: [Double]?) {
        guard let (plane, share) = Self.nearestPlane(iop) else { return nil }
        self = share >= Self.dominanceThreshold ? plane : .oblique
    }

    /// The principal plane nearest to an image's slice normal (row × column direction: along x
    /// sagittal, y coronal, z axial) and the normal's share along its axis; nil without a usable IOP.
    static func nearestPlane(_ iop: [Double]?) -> (plane: Orientation, share: Double)? {
        guard let iop, iop.count == 6 else { return nil }
        let (r, c) = ((iop[0], iop[1], iop[2]), (iop[3], iop[4], iop[5]))
        let normal = [r.1 * c.2 - r.2 * c.1, r.2 * c.0 - r.0 * c.2, r.0 * c.1 - r.1 * c.0]
        let length = (normal.map { $0 * $0 }.reduce(0, +)).squareRoot()
        guard length > 0.5 else { return nil } // not two unit vectors at right angles
        let magnitude = normal.map { abs($0) / length }
        guard let axis = magnitude.indices.max(by: { magnitude[$0] < magnitude[$1] }) else { return nil }
        return ([Orientation.sagittal, .coronal, .axial][axis], magnitude[axis])
    }

    /// The principal plane nearest to a series' images, however tilted (an oblique axial is
    /// axial); nil when the images lie nearest to different planes or have no usable IOP.
    static func nearestPlane(series headers: [ImageHeader]) -> Orientation? {
        let planes = Set(headers.compactMap { nearestPlane($0.imageOrientationPatient)?.plane })
        return planes.count == 1 ? planes.first : nil
    }

    /// The orientation of a series from its images' geometry: their common plane, `oblique` when
    /// they disagree (3-plane localisers, mixed stacks), nil when no image has a usable IOP.
    public init?(series headers: [ImageHeader]) {
        let planes = Set(headers.compactMap { Orientation(imageOrientationPatient: $0.imageOrientationPatient) })
        guard let first = planes.first else { return nil }
        self = planes.count == 1 ? first : .oblique
    }
}
