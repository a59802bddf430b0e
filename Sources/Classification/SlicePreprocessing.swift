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

    /// The lower and upper percentiles of `values` (nearest rank).
    func percentiles(_ values: [Float]) -> (Float, Float) {
        let sorted = values.filter { $0.isFinite }.sorted()
        guard !sorted.isEmpty else { return (0, 0) }
        func rank(_ percentile: Double) -> Float {
            sorted[min(sorted.count - 1, max(0, Int((percentile / 100 * Double(sorted.count - 1)).rounded())))]
        }
        return (rank(lowerPercentile), rank(upperPercentile))
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
