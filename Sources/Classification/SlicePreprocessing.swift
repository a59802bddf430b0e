import DICOM

/// Turns one decoded frame into the CNN's input: a `size` × `size` image of values in [0, 1].
///
/// 1. Colour frames become luminance.
/// 2. The frame is resampled by area averaging so that its longer side is `size` pixels, keeping
///    the aspect ratio, and centred on a square canvas (the shorter side is padded, nothing is cut).
/// 3. Intensities are clipped to the frame's `lowerPercentile`…`upperPercentile` range and scaled
///    to [0, 1]; padding is 0. Percentiles, not min/max, so that one hot pixel (or a burned-in
///    annotation) does not darken the whole slice.
///
/// This is the only implementation: `mrsort dataset --images` writes its output for the Python
/// training, and the classifier feeds it to the network, so training and serving see the same input.
public struct SlicePreprocessing: Sendable, Equatable, Codable {
    /// Side of the square output image.
    public var size: Int
    /// Percentile (0–100) mapped to 0.
    public var lowerPercentile: Double
    /// Percentile (0–100) mapped to 1.
    public var upperPercentile: Double

    public init(size: Int, lowerPercentile: Double = 1, upperPercentile: Double = 99) {
        precondition(size > 0 && lowerPercentile < upperPercentile, "invalid preprocessing parameters")
        self.size = size
        self.lowerPercentile = lowerPercentile
        self.upperPercentile = upperPercentile
    }

    /// The model input of one frame (row-major, `size * size` values).
    public func prepare(_ frame: PixelFrame) -> [Float] {
        prepare(frame.luminance(), rows: frame.rows, columns: frame.columns)
    }

    /// The model input of a grayscale image of `rows` × `columns` values (row-major).
    public func prepare(_ pixels: [Float], rows: Int, columns: Int) -> [Float] {
        var output = [Float](repeating: 0, count: size * size)
        guard rows > 0, columns > 0, pixels.count >= rows * columns else { return output }
        let scale = Double(size) / Double(max(rows, columns))
        let height = max(1, min(size, Int((Double(rows) * scale).rounded())))
        let width = max(1, min(size, Int((Double(columns) * scale).rounded())))
        let resized = Self.resample(pixels, rows: rows, columns: columns, toRows: height, columns: width)
        let (low, high) = percentiles(resized)
        // Area weights sum to 1 only up to rounding: a constant image may come back with a
        // spread of a few ulps, which is no contrast.
        let range = high - low > 1e-5 * max(1, abs(low), abs(high)) ? high - low : 0
        let top = (size - height) / 2, left = (size - width) / 2
        for y in 0..<height {
            for x in 0..<width {
                let value = resized[y * width + x]
                // A constant image carries no contrast: all zero rather than a division by zero.
                output[(top + y) * size + left + x] = range > 0 ? min(1, max(0, (value - low) / range)) : 0
            }
        }
        return output
    }

    /// The lower and upper percentiles of `values` (nearest rank), found by selection rather
    /// than a full sort: the same order statistics in linear time (a sort of every slice was a
    /// tenth of the agent's time on short series).
    func percentiles(_ values: [Float]) -> (Float, Float) {
        var finite = values.filter { $0.isFinite }
        guard !finite.isEmpty else { return (0, 0) }
        func rank(_ percentile: Double) -> Int {
            min(finite.count - 1, max(0, Int((percentile / 100 * Double(finite.count - 1)).rounded())))
        }
        // lowerPercentile < upperPercentile (init's precondition), so lower ≤ upper.
        let lower = rank(lowerPercentile), upper = rank(upperPercentile)
        let low = Self.select(&finite, rank: lower, in: 0..<finite.count)
        // Selection leaves nothing smaller than the lower rank's value after it: the upper rank is there.
        return (low, Self.select(&finite, rank: upper, in: lower..<finite.count))
    }

    /// The value that would stand at `rank` if `values[range]` were sorted; reorders the range
    /// so that nothing before `rank` is larger and nothing after it smaller (quickselect with a
    /// pseudo-random pivot: linear on average for any input, crafted ones included).
    static func select(_ values: inout [Float], rank: Int, in range: Range<Int>) -> Float {
        var low = range.lowerBound, high = range.upperBound - 1
        var generator = SplitMix64(seed: UInt64(values.count))
        while low < high {
            let pivot = values[low + Int(generator.next() % UInt64(high - low + 1))]
            // Three-way partition: < pivot | == pivot | > pivot, so runs of equal values
            // (a black background) do not make it quadratic.
            var less = low, index = low, greater = high
            while index <= greater {
                if values[index] < pivot {
                    values.swapAt(less, index)
                    less += 1
                    index += 1
                } else if values[index] > pivot {
                    values.swapAt(index, greater)
                    greater -= 1
                } else {
                    index += 1
                }
            }
            if rank < less {
                high = less - 1
            } else if rank > greater {
                low = greater + 1
            } else {
                return pivot
            }
        }
        return values[rank]
    }

    /// Area-averaging resample, separable: each output pixel is the mean of the input area it
    /// covers (fractional overlaps weighted), which anti-aliases when shrinking.
    static func resample(_ pixels: [Float], rows: Int, columns: Int, toRows height: Int, columns width: Int) -> [Float] {
        let rowWeights = areaWeights(from: rows, to: height)
        let columnWeights = areaWeights(from: columns, to: width)
        // Columns first: rows × width.
        var horizontal = [Float](repeating: 0, count: rows * width)
        for y in 0..<rows {
            for (x, weights) in columnWeights.enumerated() {
                var sum: Float = 0
                for (source, weight) in weights { sum += pixels[y * columns + source] * weight }
                horizontal[y * width + x] = sum
            }
        }
        var output = [Float](repeating: 0, count: height * width)
        for (y, weights) in rowWeights.enumerated() {
            for (source, weight) in weights {
                for x in 0..<width { output[y * width + x] += horizontal[source * width + x] * weight }
            }
        }
        return output
    }

    /// For each of `outputs` cells, the input cells it overlaps and their normalised weights.
    static func areaWeights(from inputs: Int, to outputs: Int) -> [[(Int, Float)]] {
        let step = Double(inputs) / Double(outputs)
        return (0..<outputs).map { index in
            let begin = Double(index) * step, end = Double(index + 1) * step
            var weights: [(Int, Float)] = []
            var cell = Int(begin)
            while Double(cell) < end, cell < inputs {
                let overlap = min(end, Double(cell + 1)) - max(begin, Double(cell))
                if overlap > 1e-9 { weights.append((cell, Float(overlap / step))) }
                cell += 1
            }
            return weights
        }
    }
}

extension SlicePreprocessing {
    /// Decodes and prepares the images of `headers`, opening each file once (an enhanced
    /// multi-frame file holds many). The result has one entry per header, in order: the slice,
    /// or why its pixels could not be read.
    public func slices(of headers: [ImageHeader]) -> [Result<[Float], DICOMError>] {
        var results = [Result<[Float], DICOMError>?](repeating: nil, count: headers.count)
        var byPath: [String: [Int]] = [:]
        var paths: [String] = []
        for (index, header) in headers.enumerated() {
            if byPath[header.path] == nil { paths.append(header.path) }
            byPath[header.path, default: []].append(index)
        }
        for path in paths {
            let indices = byPath[path] ?? []
            do {
                let file = try DICOMFile.open(path, headerOnly: false)
                for index in indices {
                    do {
                        results[index] = .success(prepare(try file.frame(headers[index].frame, header: headers[index])))
                    } catch {
                        results[index] = .failure(error)
                    }
                }
            } catch {
                for index in indices { results[index] = .failure(error) }
            }
        }
        return results.map { $0 ?? .failure(.badPixelData(path: "", reason: "not decoded")) }
    }
}

/// A small, fast generator for pivot choice (not for anything that needs unpredictability).
private struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
