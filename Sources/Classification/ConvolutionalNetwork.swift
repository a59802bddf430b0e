import COpenBLAS
import Dispatch
import Foundation

/// The multi-task pixel CNN, loaded from the safetensors file that `training/cnn/export.py`
/// writes: 3×3 convolutions (padding 1, batch norm already folded into weight and bias) each
/// followed by ReLU, global average pooling, then two linear heads giving sequence and
/// orientation logits.
///
/// Inference is im2col + one `cblas_sgemm` per layer over a whole batch of slices: activations
/// are stored channel-major (`[channels][slice][y][x]`), so a layer's output for every slice of
/// the batch is the product of the weight matrix `[out, in·9]` and one column matrix.
public struct ConvolutionalNetwork: Sendable {
    public static let format = "mrsort-cnn"
    public static let version = "1"

    /// Sequence class of each sequence logit, in output order.
    public let sequences: [SequenceClass]
    /// Orientation of each orientation logit, in output order.
    public let orientations: [Orientation]
    /// How slices must be prepared for this model (its input size and normalisation).
    public let preprocessing: SlicePreprocessing
    /// Free-form provenance from the export (epochs, training data), for reports.
    public let provenance: [String: String]

    struct Convolution: Sendable {
        var inputs: Int
        var outputs: Int
        var stride: Int
        /// `[outputs, inputs · 9]`, row-major (PyTorch's `[out, in, 3, 3]` flattened).
        var weight: [Float]
        var bias: [Float]
    }

    struct Linear: Sendable {
        var inputs: Int
        var outputs: Int
        /// `[outputs, inputs]`, row-major.
        var weight: [Float]
        var bias: [Float]

        func callAsFunction(_ x: UnsafeBufferPointer<Float>) -> [Float] {
            (0..<outputs).map { row in
                var sum = bias[row]
                for column in 0..<inputs { sum += weight[row * inputs + column] * x[column] }
                return sum
            }
        }
    }

    let convolutions: [Convolution]
    let sequenceHead: Linear
    let orientationHead: Linear

    /// Slices per matrix product: large enough to keep the BLAS busy, small enough that the
    /// column matrix of the widest layer stays in tens of megabytes.
    public var batchSize = 16
    /// Threads that run slices in parallel, each with a single-threaded OpenBLAS: the products of
    /// this small network are too small to split well inside BLAS, slices split evenly.
    /// 1: one thread, OpenBLAS as configured (`setThreads`, `OPENBLAS_NUM_THREADS`).
    public var threads = 1

    /// One slice's outputs.
    public struct Prediction: Sendable, Equatable {
        public var sequenceLogits: [Float]
        public var orientationLogits: [Float]
    }

    /// Loads and validates a model file; every inconsistency is reported here, never at prediction.
    public init(contentsOf path: String) throws(ModelError) {
        let file = try SafeTensors.model(at: path)
        try file.requireFormat(Self.format, version: Self.version, path: path)
        let decoder = JSONDecoder()
        func decode<T: Decodable>(_ type: T.Type, _ key: String) throws(ModelError) -> T {
            let text = try file.modelMetadata(key, path: path)
            guard let value = try? decoder.decode(T.self, from: Data(text.utf8)) else {
                throw .inconsistent(path: path, reason: "metadata \"\(key)\" is not readable: \(text.prefix(80))")
            }
            return value
        }
        let sequenceNames = try decode([String].self, "sequences")
        let orientationNames = try decode([String].self, "orientations")
        guard sequenceNames == SequenceClass.allCases.map(\.rawValue) else {
            throw .classMismatch(path: path, reason: "sequence classes \(sequenceNames) are not the taxonomy")
        }
        guard orientationNames == Orientation.allCases.map(\.rawValue) else {
            throw .classMismatch(path: path, reason: "orientations \(orientationNames) are not the taxonomy")
        }
        let preprocessing = try decode(SlicePreprocessing.self, "preprocessing")
        guard preprocessing.size > 0, preprocessing.size <= 1024, preprocessing.lowerPercentile < preprocessing.upperPercentile else {
            throw .inconsistent(path: path, reason: "preprocessing \(preprocessing) is not usable")
        }
        let strides = try decode([Int].self, "strides")
        guard !strides.isEmpty, strides.allSatisfy({ (1...4).contains($0) }) else {
            throw .inconsistent(path: path, reason: "strides \(strides) are not usable")
        }
        func floats(_ name: String, shape: [Int?]) throws(ModelError) -> (values: [Float], shape: [Int]) {
            let tensor = try file.modelTensor(name, path: path)
            guard tensor.dtype == .float32 else {
                throw .inconsistent(path: path, reason: "tensor \(name) is \(tensor.dtype.rawValue), expected F32")
            }
            guard tensor.shape.count == shape.count,
                  zip(tensor.shape, shape).allSatisfy({ actual, expected in expected.map { $0 == actual } ?? (actual > 0) }) else {
                let wanted = shape.map { $0.map(String.init) ?? "?" }.joined(separator: ", ")
                throw .inconsistent(path: path, reason: "tensor \(name) has shape \(tensor.shape), expected [\(wanted)]")
            }
            return (tensor.floats(), tensor.shape)
        }
        var convolutions: [Convolution] = []
        var channels = 1
        for (index, stride) in strides.enumerated() {
            let weight = try floats("conv\(index).weight", shape: [nil, channels, 3, 3])
            let outputs = weight.shape[0]
            let bias = try floats("conv\(index).bias", shape: [outputs])
            convolutions.append(Convolution(inputs: channels, outputs: outputs, stride: stride, weight: weight.values, bias: bias.values))
            channels = outputs
        }
        if file.tensors["conv\(strides.count).weight"] != nil {
            throw .inconsistent(path: path, reason: "more convolutions than the \(strides.count) strides in the metadata")
        }
        let sequenceWeight = try floats("sequence.weight", shape: [sequenceNames.count, channels])
        let sequenceBias = try floats("sequence.bias", shape: [sequenceNames.count])
        let orientationWeight = try floats("orientation.weight", shape: [orientationNames.count, channels])
        let orientationBias = try floats("orientation.bias", shape: [orientationNames.count])
        self.sequences = SequenceClass.allCases
        self.orientations = Orientation.allCases
        self.preprocessing = preprocessing
        self.provenance = file.metadata.filter { !["sequences", "orientations"].contains($0.key) }
        self.convolutions = convolutions
        self.sequenceHead = Linear(inputs: channels, outputs: sequenceNames.count, weight: sequenceWeight.values, bias: sequenceBias.values)
        self.orientationHead = Linear(inputs: channels, outputs: orientationNames.count, weight: orientationWeight.values, bias: orientationBias.values)
    }

    /// Sets the number of threads OpenBLAS uses for every matrix product in this process
    /// (the library's setting is global, not per model).
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }

    /// The outputs of each slice (each `preprocessing.size²` values, row-major, in [0, 1]).
    public func predict(_ slices: [[Float]]) -> [Prediction] {
        let workers = min(max(1, threads), slices.count)
        guard workers > 1 else { return predictSerially(slices[...]) }
        // Process-wide, but a BLAS that spawns its own threads under ours would oversubscribe the cores.
        Self.setThreads(1)
        let share = (slices.count + workers - 1) / workers
        let parts = (0..<workers).map { slices[($0 * share)..<min(slices.count, ($0 + 1) * share)] }
        // Each worker writes only its own slot.
        nonisolated(unsafe) var results = [[Prediction]](repeating: [], count: workers)
        results.withUnsafeMutableBufferPointer { slots in
            nonisolated(unsafe) let slots = slots
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                slots[worker] = predictSerially(parts[worker])
            }
        }
        return results.flatMap { $0 }
    }

    private func predictSerially(_ slices: ArraySlice<[Float]>) -> [Prediction] {
        var predictions: [Prediction] = []
        predictions.reserveCapacity(slices.count)
        var start = slices.startIndex
        while start < slices.endIndex {
            let end = min(slices.endIndex, start + max(1, batchSize))
            predictions += predictBatch(slices[start..<end])
            start = end
        }
        return predictions
    }

    private func predictBatch(_ slices: ArraySlice<[Float]>) -> [Prediction] {
        let batch = slices.count, side = preprocessing.size
        var height = side, width = side
        // Channel-major: one input channel, the slices one after another.
        var activation = [Float](repeating: 0, count: batch * side * side)
        for (index, slice) in slices.enumerated() {
            precondition(slice.count == side * side, "slice has \(slice.count) values, the model takes \(side)×\(side)")
            activation.replaceSubrange((index * side * side)..<((index + 1) * side * side), with: slice)
        }
        var columns: [Float] = []
        for layer in convolutions {
            let outHeight = (height - 1) / layer.stride + 1, outWidth = (width - 1) / layer.stride + 1
            let area = outHeight * outWidth, positions = batch * area, depth = layer.inputs * 9
            // Every element is written by the products below (beta = 0), so no zero fill.
            var output = [Float](unsafeUninitializedCapacity: layer.outputs * positions) { _, count in
                count = layer.outputs * positions
            }
            // A few slices per product, so that the column matrix stays in cache (a whole
            // batch's would be tens of megabytes for the first layers, and memory-bound).
            let chunk = max(1, min(batch, Self.columnBudget / max(1, depth * area)))
            var first = 0
            while first < batch {
                let slices = first..<min(batch, first + chunk)
                Self.im2col(activation, channels: layer.inputs, batch: batch, height: height, width: width,
                            stride: layer.stride, outHeight: outHeight, outWidth: outWidth, slices: slices, into: &columns)
                let n = slices.count * area
                layer.weight.withUnsafeBufferPointer { weight in
                    columns.withUnsafeBufferPointer { cols in
                        output.withUnsafeMutableBufferPointer { out in
                            // Row-major C = W · cols, written into columns [first·area, …) of every output row.
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(layer.outputs), Int32(n), Int32(depth),
                                        1, weight.baseAddress, Int32(depth), cols.baseAddress, Int32(n),
                                        0, out.baseAddress.map { $0 + first * area }, Int32(positions))
                        }
                    }
                }
                first = slices.upperBound
            }
            output.withUnsafeMutableBufferPointer { out in
                guard let base = out.baseAddress else { return }
                for channel in 0..<layer.outputs {
                    Self.addBiasAndRectify(base + channel * positions, count: positions, bias: layer.bias[channel])
                }
            }
            activation = output
            height = outHeight
            width = outWidth
        }
        let channels = convolutions.last?.outputs ?? 1
        let area = height * width
        return (0..<batch).map { slice in
            var pooled = [Float](repeating: 0, count: channels)
            activation.withUnsafeBufferPointer { a in
                for channel in 0..<channels {
                    let base = (channel * batch + slice) * area
                    var sum: Float = 0
                    for position in 0..<area { sum += a[base + position] }
                    pooled[channel] = sum / Float(area)
                }
            }
            return pooled.withUnsafeBufferPointer { p in
                Prediction(sequenceLogits: sequenceHead(p), orientationLogits: orientationHead(p))
            }
        }
    }

    /// `x = max(x + bias, 0)` over `count` values, eight at a time.
    @inline(__always)
    static func addBiasAndRectify(_ values: UnsafeMutablePointer<Float>, count: Int, bias: Float) {
        let raw = UnsafeMutableRawPointer(values)
        let b = SIMD8<Float>(repeating: bias), zero = SIMD8<Float>(repeating: 0)
        var index = 0
        while index + 8 <= count {
            let v = raw.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self) + b
            raw.storeBytes(of: v.replacing(with: zero, where: v .< zero), toByteOffset: index * 4, as: SIMD8<Float>.self)
            index += 8
        }
        while index < count {
            let v = values[index] + bias
            values[index] = v > 0 ? v : 0
            index += 1
        }
    }

    /// Floats of column matrix per product (1 MiB): about what stays in a core's L2 cache.
    static let columnBudget = 1 << 18

    /// The column matrix `[channels · 9, slices.count · outHeight · outWidth]` of a 3×3,
    /// padding-1 convolution over `slices` of the batch: row `c·9 + ky·3 + kx` holds input
    /// channel c shifted by (ky − 1, kx − 1).
    static func im2col(_ input: [Float], channels: Int, batch: Int, height: Int, width: Int, stride: Int,
                       outHeight: Int, outWidth: Int, slices: Range<Int>, into columns: inout [Float]) {
        let positions = slices.count * outHeight * outWidth
        let count = channels * 9 * positions
        if columns.count < count { columns = [Float](repeating: 0, count: count) }
        input.withUnsafeBufferPointer { input in
            columns.withUnsafeMutableBufferPointer { columns in
                guard let source = input.baseAddress, let target = columns.baseAddress else { return }
                for channel in 0..<channels {
                    for ky in 0..<3 {
                        for kx in 0..<3 {
                            // Output columns whose input column x = ox·stride + kx − 1 lies inside the image;
                            // the rest read the zero padding. Computed once per row instead of per pixel.
                            let first = kx == 0 ? 1 : 0
                            let end = min(outWidth, (width - kx + stride) / stride)
                            var row = target + (channel * 9 + ky * 3 + kx) * positions
                            for slice in slices {
                                let plane = source + (channel * batch + slice) * height * width
                                for oy in 0..<outHeight {
                                    let y = oy * stride + ky - 1
                                    if y < 0 || y >= height || end <= first {
                                        row.update(repeating: 0, count: outWidth)
                                    } else {
                                        let line = plane + y * width + kx - 1
                                        if first > 0 { row.update(repeating: 0, count: first) }
                                        if stride == 1 {
                                            (row + first).update(from: line + first, count: end - first)
                                        } else {
                                            for ox in first..<end { row[ox] = line[ox * stride] }
                                        }
                                        if end < outWidth { (row + end).update(repeating: 0, count: outWidth - end) }
                                    }
                                    row += outWidth
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

extension ConvolutionalNetwork.Prediction {
    /// Log-softmax of logits (numerically stable).
    static func logSoftmax(_ logits: [Float]) -> [Double] {
        let top = Double(logits.max() ?? 0)
        let total = log(logits.reduce(0.0) { $0 + exp(Double($1) - top) })
        return logits.map { Double($0) - top - total }
    }

    /// Sequence probabilities, in taxonomy order.
    public var sequenceProbabilities: [Double] { Self.logSoftmax(sequenceLogits).map { exp($0) } }
    /// Orientation probabilities, in taxonomy order.
    public var orientationProbabilities: [Double] { Self.logSoftmax(orientationLogits).map { exp($0) } }

    /// The most probable sequence (ties: the first in taxonomy order).
    public var sequence: SequenceClass {
        SequenceClass.allCases[sequenceLogits.indices.max { sequenceLogits[$0] < sequenceLogits[$1] } ?? 0]
    }

    /// The most probable orientation (ties: the first in taxonomy order).
    public var orientation: Orientation {
        Orientation.allCases[orientationLogits.indices.max { orientationLogits[$0] < orientationLogits[$1] } ?? 0]
    }
}
