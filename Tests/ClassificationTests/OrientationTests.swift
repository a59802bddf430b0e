import DICOM
import Foundation
import Testing
@testable import Classification

@Suite("Orientation from geometry")
struct OrientationTests {
    @Test(arguments: [
        ([1.0, 0, 0, 0, 1, 0], Orientation.axial),
        ([0.0, 1, 0, 0, 0, -1], .sagittal),
        ([1.0, 0, 0, 0, 0, -1], .coronal),
        // 30° about x from axial: normal z-component cos 30° = 0.87, still axial.
        ([1.0, 0, 0, 0, 0.866, -0.5], .axial),
        // 45°: no axis dominates.
        ([1.0, 0, 0, 0, 0.7071, -0.7071], .oblique),
    ])
    func plane(iop: [Double], expected: Orientation) {
        #expect(Orientation(imageOrientationPatient: iop) == expected)
    }

    @Test func unusableGeometry() {
        #expect(Orientation(imageOrientationPatient: nil) == nil)
        #expect(Orientation(imageOrientationPatient: [1, 0, 0]) == nil)
        #expect(Orientation(imageOrientationPatient: [1, 0, 0, 1, 0, 0]) == nil)
    }

    @Test("Every real series with geometry gets its labelled orientation")
    func realSeries() throws {
        let labels = try SeriesLabels(contentsOf: Paths.realData + "/labels.csv")
        var checked = 0
        for row in labels.rows {
            let files = try DICOMFileDiscovery.files(in: [Paths.realData + "/" + row.dir])
            let headers = try files.flatMap { try ImageHeader.read(from: $0) }
            guard let orientation = Orientation(series: headers) else { continue }
            #expect(orientation == row.orientation, "\(row.dir)")
            checked += 1
        }
        #expect(checked >= 60)
    }
}
