// Header-read throughput: `mrsort-benchmark headers DIR [--threads N] [--rounds R]`.
//
// Reads every DICOM file under DIR header-only (stopping before PixelData), R rounds, on N
// threads, and prints files per second. Files that are not DICOM are counted apart.
// benchmarks/header-read.sh runs it beside pydicom on the same files.
import DICOM
import Dispatch
import Foundation

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
    var description: String { "usage: mrsort-benchmark headers DIR [--threads N] [--rounds R]" }
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
