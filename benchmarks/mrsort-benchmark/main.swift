// Throughput benchmarks.
//
// `mrsort-benchmark headers DIR [--threads N] [--rounds R]` reads every DICOM file under DIR
// header-only (stopping before PixelData), R rounds, on N threads, and prints files per second.
// Files that are not DICOM are counted apart. benchmarks/header-read.sh runs it beside pydicom.
//
// `mrsort-benchmark forest MODEL DATASET [--rounds R]` evaluates the random forest on every
// feature row of a `mrsort dataset` file on one thread and prints images per second.
//
// `mrsort-benchmark cnn MODEL IMAGES [--threads N] [--blas] [--slices S] [--batch B] [--rounds R]`
// runs the CNN on the first S preprocessed slices of a `mrsort dataset --images` file, B slices per
// product, on N threads (over the slices; with --blas inside OpenBLAS instead), and prints
// milliseconds per slice.
// benchmarks/cnn.sh runs it beside PyTorch on the same weights, slices and thread count.
import Classification
import DICOM
import Dispatch
import Foundation

/// The forest benchmark: probabilities for every row of a dataset, best of `rounds`.
func forestBenchmark(_ arguments: [String]) throws {
    guard arguments.count >= 2 else { throw UsageError() }
    let rounds = arguments.firstIndex(of: "--rounds").flatMap { Int(arguments[safe: $0 + 1] ?? "") } ?? 5
    let forest = try RandomForest(contentsOf: arguments[0])
    let dataset = try SafeTensors(contentsOf: arguments[1])
    let features = try dataset.tensor("features", in: arguments[1])
    let width = features.shape[1], values = features.floats()
    let rows = (0..<features.shape[0]).map { Array(values[($0 * width)..<(($0 + 1) * width)]) }
    var best = Double.infinity, checksum = 0.0
    for _ in 0..<rounds {
        let start = DispatchTime.now().uptimeNanoseconds
        for row in rows { checksum += forest.probabilities(row: row)[0] }
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    print("forest trees=\(forest.treeCount) images=\(rows.count) best_of=\(rounds) seconds=\(String(format: "%.4f", best)) "
        + "images_per_second=\(Int(Double(rows.count) / best)) checksum=\(String(format: "%.3f", checksum))")
}

/// The CNN benchmark: every slice once per round, best of `rounds` after a warm-up.
func cnnBenchmark(_ arguments: [String]) throws {
    guard arguments.count >= 2 else { throw UsageError() }
    func option(_ name: String, _ fallback: Int) -> Int {
        arguments.firstIndex(of: name).flatMap { Int(arguments[safe: $0 + 1] ?? "") } ?? fallback
    }
    let (threads, count, batch, rounds) = (option("--threads", 1), option("--slices", 64), option("--batch", 16), option("--rounds", 5))
    var network = try ConvolutionalNetwork(contentsOf: arguments[0])
    network.batchSize = batch
    // Default: N engine threads over the slices, each with a one-thread BLAS; --blas: one engine
    // thread and N BLAS threads inside each product.
    let blas = arguments.contains("--blas")
    network.threads = blas ? 1 : threads
    ConvolutionalNetwork.setThreads(blas ? threads : 1)
    let dataset = try SafeTensors(contentsOf: arguments[1])
    let images = try dataset.tensor("images", in: arguments[1])
    let side = network.preprocessing.size
    guard images.shape.count == 3, images.shape[1] == side, images.shape[2] == side else {
        throw CNNBenchmarkError(description: "\(arguments[1]): slices \(images.shape) do not fit the model's \(side)×\(side) input")
    }
    // Stored as round(255 × value) (TrainingDataset).
    let values = images.floats().map { $0 / 255 }
    let slices = (0..<min(count, images.shape[0])).map { Array(values[($0 * side * side)..<(($0 + 1) * side * side)]) }
    var checksum = network.predict(slices).reduce(Float(0)) { $0 + $1.sequenceLogits[0] }
    var best = Double.infinity
    for _ in 0..<rounds {
        let start = DispatchTime.now().uptimeNanoseconds
        checksum += network.predict(slices).reduce(Float(0)) { $0 + $1.sequenceLogits[0] }
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    print("swift-openblas threads=\(threads)\(blas ? " (inside BLAS)" : " (over slices)") slices=\(slices.count) batch=\(batch) input=\(side) best_of=\(rounds) "
        + "seconds=\(String(format: "%.4f", best)) ms_per_slice=\(String(format: "%.3f", best * 1000 / Double(slices.count))) "
        + "checksum=\(String(format: "%.3f", checksum))")
}

struct CNNBenchmarkError: Error, CustomStringConvertible {
    var description: String
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}

struct Options {
    var directory = ""
    var threads = 1
    var rounds = 5

    init(_ arguments: [String]) throws {
        var rest = arguments.dropFirst()
        guard rest.first == "headers" else { throw UsageError() }
        rest = rest.dropFirst()
        while let argument = rest.popFirst() {
            switch argument {
            case "--threads": threads = Int(rest.popFirst() ?? "") ?? 0
            case "--rounds": rounds = Int(rest.popFirst() ?? "") ?? 0
            default: directory = argument
            }
        }
        guard !directory.isEmpty, threads > 0, rounds > 0 else { throw UsageError() }
    }
}

struct UsageError: Error, CustomStringConvertible {
    var description: String {
        "usage: mrsort-benchmark headers DIR [--threads N] [--rounds R] | forest MODEL DATASET [--rounds R]"
            + " | cnn MODEL IMAGES [--threads N] [--blas] [--slices S] [--batch B] [--rounds R]"
            + " | series DIR [--threads N] [--cnn-images K] [--rounds R]"
    }
}

/// Reads each file's headers; returns the number of files read and refused.
func readAll(_ files: [String], threads: Int) -> (read: Int, refused: Int) {
    let chunk = (files.count + threads - 1) / threads
    // Each worker writes only its own slot.
    nonisolated(unsafe) let counts = UnsafeMutableBufferPointer<(Int, Int)>.allocate(capacity: threads)
    defer { counts.deallocate() }
    DispatchQueue.concurrentPerform(iterations: threads) { worker in
        var read = 0, refused = 0
        for file in files.dropFirst(worker * chunk).prefix(chunk) {
            if (try? ImageHeader.read(from: file)) != nil { read += 1 } else { refused += 1 }
        }
        counts[worker] = (read, refused)
    }
    return counts.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
}

do {
    if CommandLine.arguments.dropFirst().first == "forest" {
        try forestBenchmark(Array(CommandLine.arguments.dropFirst(2)))
        exit(0)
    }
    if CommandLine.arguments.dropFirst().first == "series" {
        try seriesBenchmark(Array(CommandLine.arguments.dropFirst(2)))
        exit(0)
    }
    if CommandLine.arguments.dropFirst().first == "cnn" {
        try cnnBenchmark(Array(CommandLine.arguments.dropFirst(2)))
        exit(0)
    }
    let options = try Options(CommandLine.arguments)
    let files = try DICOMFileDiscovery.files(in: [options.directory])
    _ = readAll(files, threads: options.threads) // warm the page cache
    var best = Double.infinity
    var result = (read: 0, refused: 0)
    for _ in 0..<options.rounds {
        let start = DispatchTime.now().uptimeNanoseconds
        result = readAll(files, threads: options.threads)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        best = min(best, seconds)
    }
    let rate = Double(result.read + result.refused) / best
    print("mrsort threads=\(options.threads) files=\(result.read) refused=\(result.refused) best_of=\(options.rounds) seconds=\(String(format: "%.4f", best)) files_per_second=\(Int(rate))")
} catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(2)
}
