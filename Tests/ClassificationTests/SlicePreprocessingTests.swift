import DICOM
import Foundation
import Testing
@testable import Classification

@Suite("Slice preprocessing")
struct SlicePreprocessingTests {
    let preprocessing = SlicePreprocessing(size: 32)

    /// A bright rectangle on a dark background.
    static func rectangle(rows: Int, columns: Int) -> [Float] {
        (0..<(rows * columns)).map { index in
            let (y, x) = (index / columns, index % columns)
            return (y >= rows / 4 && y < 3 * rows / 4 && x >= columns / 4 && x < 3 * columns / 4) ? 1000 : 100
        }
    }

    @Test("A wide image keeps its aspect ratio: padded above and below, not stretched")
    func aspectPreserved() {
        // 64 × 128 → 16 × 32 content centred in 32 × 32: rows 0–7 and 24–31 are padding.
        let output = preprocessing.prepare(Self.rectangle(rows: 64, columns: 128), rows: 64, columns: 128)
        #expect(output.count == 32 * 32)
        for x in 0..<32 {
            #expect(output[3 * 32 + x] == 0)
            #expect(output[28 * 32 + x] == 0)
        }
        // The bright rectangle spans half the content: rows 12–19, columns 8–23.
        #expect(output[16 * 32 + 16] == 1)
        #expect(output[16 * 32 + 10] == 1)
        #expect(output[16 * 32 + 4] == 0)
        #expect(output[10 * 32 + 16] == 0)
    }

    @Test("One extreme pixel does not change the normalisation of the rest")
    func robustToOutlier() {
        let clean = Self.rectangle(rows: 64, columns: 64)
        var hot = clean
        hot[5] = 1e9
        let a = preprocessing.prepare(clean, rows: 64, columns: 64)
        let b = preprocessing.prepare(hot, rows: 64, columns: 64)
        // Only the 2×2 output cell holding the hot pixel may differ; it is clipped to 1.
        let differing = zip(a, b).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
        #expect(differing == [2])
        #expect(b[2] == 1)
        #expect(a[16 * 32 + 16] == 1 && a[0] == 0)
    }

    @Test("Percentiles by selection are the sorted array's nearest ranks: random, tied, constant, non-finite, tiny inputs")
    func percentilesBySelection() {
        func sortedRanks(_ values: [Float], _ p: SlicePreprocessing) -> (Float, Float) {
            let sorted = values.filter(\.isFinite).sorted()
            guard !sorted.isEmpty else { return (0, 0) }
            func rank(_ q: Double) -> Float { sorted[min(sorted.count - 1, max(0, Int((q / 100 * Double(sorted.count - 1)).rounded())))] }
            return (rank(p.lowerPercentile), rank(p.upperPercentile))
        }
        var generator = SystemRandomNumberGenerator()
        let inputs: [[Float]] = [
            (0..<4096).map { _ in Float.random(in: -1000...5000, using: &generator) },
            // A black background with a few bright values: long runs of ties.
            (0..<4096).map { $0 % 97 == 0 ? Float($0) : 0 },
            [Float](repeating: 7, count: 1000),
            [3, .nan, 1, .infinity, 2, -.infinity],
            [42],
            [Float.nan],
            (0..<1000).map { Float(1000 - $0) },
        ]
        for values in inputs {
            for p in [SlicePreprocessing(size: 32), SlicePreprocessing(size: 32, lowerPercentile: 0, upperPercentile: 100),
                      SlicePreprocessing(size: 32, lowerPercentile: 10, upperPercentile: 90)] {
                let expected = sortedRanks(values, p), found = p.percentiles(values)
                #expect(found == expected, "\(values.prefix(8))… \(p.lowerPercentile)/\(p.upperPercentile)")
            }
        }
    }

    @Test("Values are in [0, 1]; a constant image is all zero")
    func range() {
        let noise = (0..<(50 * 70)).map { Float(($0 * 7919) % 1000) - 300 }
        let output = preprocessing.prepare(noise, rows: 50, columns: 70)
        #expect(output.allSatisfy { (0...1).contains($0) })
        #expect(output.contains(0) && output.contains(1))
        #expect(preprocessing.prepare([Float](repeating: 42, count: 100), rows: 10, columns: 10).allSatisfy { $0 == 0 })
    }

    @Test("Area averaging: shrinking by 2 gives the mean of each 2×2 block")
    func areaAverage() {
        let pixels: [Float] = [0, 2, 4, 6,
                               2, 4, 6, 8,
                               1, 1, 3, 3,
                               1, 1, 3, 3]
        #expect(SlicePreprocessing.resample(pixels, rows: 4, columns: 4, toRows: 2, columns: 2) == [2, 6, 1, 3])
    }

    @Test("Real series: every decodable frame gives a full slice; JPEG 2000 reports why it cannot")
    func realSlices() throws {
        let directory = Paths.realData + "/pydicom-data__S1_MR2_UNCR"
        let files = try DICOMFileDiscovery.files(in: [directory])
        let headers = try files.flatMap { try ImageHeader.read(from: $0) }
        try #require(!headers.isEmpty)
        let results = preprocessing.slices(of: headers)
        #expect(results.count == headers.count)
        var decoded = 0
        for (header, result) in zip(headers, results) {
            switch result {
            case .success(let slice):
                decoded += 1
                #expect(slice.count == 32 * 32 && slice.contains(1))
            case .failure(let error):
                #expect(header.transferSyntaxUID.hasPrefix("1.2.840.10008.1.2.4.9"), "\(error)")
            }
        }
        #expect(decoded > 0)
    }
}
