import Foundation
import Testing
@testable import Classification

extension Paths {
    /// The shipped CNN (training/cnn/export.py).
    static let cnn = repositoryRoot + "/models/cnn.safetensors"
    /// Input slices and PyTorch's logits for them, written by training/cnn/export.py --fixture.
    static let cnnParity = repositoryRoot + "/Tests/ClassificationTests/Fixtures/cnn-parity.safetensors"
}

@Suite("Convolutional network")
final class ConvolutionalNetworkTests {
    /// A folder of this test's own, for model files it writes; removed with the suite instance.
    let scratch: String

    init() throws { scratch = try Paths.temporaryDirectory() }

    deinit { try? FileManager.default.removeItem(atPath: scratch) }

    @Test("Swift logits equal PyTorch's on the committed fixture slices (to 1e-3)")
    func parityWithPyTorch() throws {
        let network = try ConvolutionalNetwork(contentsOf: Paths.cnn)
        let fixture = try SafeTensors(contentsOf: Paths.cnnParity)
        let input = try fixture.tensor("input", in: Paths.cnnParity)
        let side = network.preprocessing.size
        #expect(input.shape.dropFirst() == [side, side])
        let values = input.floats()
        let slices = (0..<input.shape[0]).map { Array(values[($0 * side * side)..<(($0 + 1) * side * side)]) }
        #expect(slices.count >= 4)
        var network3 = network
        network3.batchSize = 3  // batches that split the fixture unevenly give the same answer
        var parallel = network
        parallel.threads = 3  // so do slices split over threads
        for engine in [network, network3, parallel] {
            let predictions = engine.predict(slices)
            for (head, outputs) in [("sequence_logits", predictions.map(\.sequenceLogits)),
                                    ("orientation_logits", predictions.map(\.orientationLogits))] {
                let reference = try fixture.tensor(head, in: Paths.cnnParity).floats()
                let swift = outputs.flatMap { $0 }
                #expect(swift.count == reference.count)
                let worst = zip(swift, reference).map { abs($0 - $1) }.max() ?? .infinity
                #expect(worst <= 1e-3, "\(head): largest difference \(worst)")
            }
        }
    }

    @Test("The model's classes are the taxonomy and its input is square")
    func metadata() throws {
        let network = try ConvolutionalNetwork(contentsOf: Paths.cnn)
        #expect(network.sequences == SequenceClass.allCases)
        #expect(network.orientations == Orientation.allCases)
        #expect(network.preprocessing.size >= 32)
    }

    /// The shipped model with one change, written to a temporary file.
    func modified(_ change: (inout SafeTensors) throws -> Void) throws -> String {
        var file = try SafeTensors(contentsOf: Paths.cnn)
        try change(&file)
        let path = scratch + "/cnn.safetensors"
        try file.encoded().write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func missingFile() {
        #expect { try ConvolutionalNetwork(contentsOf: "/nonexistent/cnn.safetensors") } throws: { error in
            if case ModelError.unreadable(let path, _) = error { path == "/nonexistent/cnn.safetensors" } else { false }
        }
    }

    @Test func truncatedFile() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Paths.cnn))
        let path = scratch + "/cnn.safetensors"
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        #expect { try ConvolutionalNetwork(contentsOf: path) } throws: { error in
            if case ModelError.unreadable(_, let reason) = error { reason.contains("data range") } else { false }
        }
    }

    @Test func wrongVersion() throws {
        let path = try modified { $0.metadata["version"] = "2" }
        #expect(throws: ModelError.wrongFormat(path: path, expected: "mrsort-cnn v1", found: "mrsort-cnn v2")) {
            try ConvolutionalNetwork(contentsOf: path)
        }
    }

    @Test("A forest file is not a CNN")
    func forestIsNotACNN() {
        #expect { try ConvolutionalNetwork(contentsOf: Paths.forest) } throws: { error in
            if case ModelError.wrongFormat(_, _, let found) = error { found.hasPrefix("mrsort-forest") } else { false }
        }
    }

    @Test("A convolution whose input channels do not chain is refused at load")
    func shapeMismatch() throws {
        let path = try modified { file in
            let weight = try #require(file.tensors["conv3.weight"])
            let (outputs, inputs) = (weight.shape[0], weight.shape[1] + 1)
            file.tensors["conv3.weight"] = .init([Float](repeating: 0, count: outputs * inputs * 9), shape: [outputs, inputs, 3, 3])
        }
        #expect { try ConvolutionalNetwork(contentsOf: path) } throws: { error in
            if case ModelError.inconsistent(_, let reason) = error { reason.contains("conv3.weight") } else { false }
        }
    }

    @Test func missingHead() throws {
        let path = try modified { $0.tensors["orientation.bias"] = nil }
        #expect(throws: ModelError.inconsistent(path: path, reason: "no tensor \"orientation.bias\"")) {
            try ConvolutionalNetwork(contentsOf: path)
        }
    }

    @Test func classesOutOfOrder() throws {
        let path = try modified { file in
            var names = SequenceClass.allCases.map(\.rawValue)
            names.swapAt(0, 1)
            file.metadata["sequences"] = String(decoding: try JSONEncoder().encode(names), as: UTF8.self)
        }
        #expect { try ConvolutionalNetwork(contentsOf: path) } throws: { error in
            if case ModelError.classMismatch = error { true } else { false }
        }
    }

    @Test("Weights stored as F64 are refused rather than reinterpreted")
    func wrongDType() throws {
        let path = try modified { file in
            let bias = try #require(file.tensors["conv0.bias"])
            let doubles = bias.floats().map(Double.init)
            file.tensors["conv0.bias"] = .init(dtype: .float64, shape: bias.shape, data: doubles.withUnsafeBytes { Data($0) })
        }
        #expect { try ConvolutionalNetwork(contentsOf: path) } throws: { error in
            if case ModelError.inconsistent(_, let reason) = error { reason.contains("F64") } else { false }
        }
    }

    @Test("im2col of a strided 3×3 convolution matches a direct convolution")
    func im2colMatchesDirectConvolution() {
        // 2 channels, 2 slices of 5×4, stride 2: the column matrix times a kernel equals the sum by hand.
        let (channels, batch, height, width, stride) = (2, 2, 5, 4, 2)
        let input = (0..<(channels * batch * height * width)).map { Float(($0 * 7) % 11) - 5 }
        let kernel = (0..<(channels * 9)).map { Float(($0 * 5) % 7) - 3 }
        let outHeight = (height - 1) / stride + 1, outWidth = (width - 1) / stride + 1
        var columns: [Float] = []
        ConvolutionalNetwork.im2col(input, channels: channels, batch: batch, height: height, width: width, stride: stride,
                                    outHeight: outHeight, outWidth: outWidth, slices: 0..<batch, into: &columns)
        let positions = batch * outHeight * outWidth
        for slice in 0..<batch {
            for oy in 0..<outHeight {
                for ox in 0..<outWidth {
                    var direct: Float = 0
                    for c in 0..<channels {
                        for ky in 0..<3 {
                            for kx in 0..<3 {
                                let y = oy * stride + ky - 1, x = ox * stride + kx - 1
                                guard (0..<height).contains(y), (0..<width).contains(x) else { continue }
                                direct += kernel[c * 9 + ky * 3 + kx] * input[((c * batch + slice) * height + y) * width + x]
                            }
                        }
                    }
                    let position = (slice * outHeight + oy) * outWidth + ox
                    let viaColumns = (0..<(channels * 9)).reduce(Float(0)) { $0 + kernel[$1] * columns[$1 * positions + position] }
                    #expect(viaColumns == direct)
                }
            }
        }
    }
}
