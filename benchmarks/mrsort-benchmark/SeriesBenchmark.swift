// `mrsort-benchmark series DIR [--threads N] [--cnn-images K] [--rounds R]`: the time to classify
// one series from its files as `mrsort classify` and the agent do it — header reads of every file,
// the forest on every image, K evenly spaced images decoded, preprocessed and run through the CNN
// on N threads — best of R rounds after a warm-up.
import Classification
import DICOM
import Dispatch
import Foundation

func seriesBenchmark(_ arguments: [String]) throws {
    guard let directory = arguments.first else { throw UsageError() }
    func option(_ name: String, _ fallback: Int) -> Int {
        arguments.firstIndex(of: name).flatMap { Int(arguments[safe: $0 + 1] ?? "") } ?? fallback
    }
    let (threads, images, rounds) = (option("--threads", 2), option("--cnn-images", SeriesClassifier.defaultCNNImagesPerSeries), option("--rounds", 5))
    var classifier = try SeriesClassifier(modelDirectory: ModelDirectory.locate())
    classifier.cnnImagesPerSeries = images
    ConvolutionalNetwork.setThreads(1)
    if var cnn = classifier.cnn {
        cnn.threads = threads
        classifier = SeriesClassifier(forest: classifier.forest, cnn: cnn, cnnImagesPerSeries: images)
    }
    let files = try DICOMFileDiscovery.files(in: [directory])
    func classifyOnce() throws -> SeriesClassification? {
        var headers: [ImageHeader] = []
        for file in files { headers += try ImageHeader.read(from: file) }
        return classifier.classify(images: headers, studyContext: true).first
    }
    guard let warm = try classifyOnce() else { throw CNNBenchmarkError(description: "\(directory): no series") }
    var best = Double.infinity
    for _ in 0..<rounds {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try classifyOnce()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    print("series files=\(files.count) images=\(warm.images) cnn_images=\(classifier.cnn == nil ? 0 : min(images, warm.images)) threads=\(threads) "
        + "best_of=\(rounds) seconds=\(String(format: "%.3f", best)) sequence=\(warm.sequence.rawValue) orientation=\(warm.orientation.rawValue)")
}
