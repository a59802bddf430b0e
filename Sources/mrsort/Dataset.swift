import ArgumentParser
import Classification
import DICOM
import Foundation

/// `mrsort dataset`: the feature matrix of a labelled corpus, for the training code.
struct Dataset: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Extract the per-image metadata features of a labelled DICOM corpus for training.",
        discussion: """
        Reads every file under DIR header-only, labels it through the series folder it lies in \
        (labels.csv: dir, series_uid, sequence, orientation, vendor) and writes a safetensors file \
        that training/ reads. The token vocabulary is built from the corpus unless --vocabulary \
        names a dataset or model file whose vocabulary to reuse.
        """
    )

    @Argument(help: "Corpus root (series folders as labels.csv names them).")
    var directory: String

    @Option(help: "labels.csv (default: DIR/labels.csv).")
    var labels: String?

    @Option(help: "Output safetensors file.")
    var out: String

    @Option(help: "Reuse the vocabulary of this dataset or model file.")
    var vocabulary: String?

    @Option(help: "At most this many images per series, evenly spaced (0: all).")
    var maxImagesPerSeries = 32

    @Option(help: "A token enters the vocabulary when this many series carry it.")
    var minimumSeries = 3

    @Flag(help: "Also decode each selected image and store the CNN's preprocessed slice (tensor `images`).")
    var images = false

    @Option(help: "Side of the preprocessed slices (with --images).")
    var imageSize = 96

    func validate() throws {
        // A side of 0 has no pixels (and reached a precondition); 1024 (4 MB a slice) is far beyond any model's input.
        guard (1...1024).contains(imageSize) else { throw ValidationError("--image-size must be between 1 and 1024, not \(imageSize)") }
        guard maxImagesPerSeries >= 0 else { throw ValidationError("--max-images-per-series must be 0 (all) or more, not \(maxImagesPerSeries)") }
        guard minimumSeries >= 1 else { throw ValidationError("--minimum-series must be at least 1, not \(minimumSeries)") }
    }

    func run() throws {
        let root = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let table = try SeriesLabels(contentsOf: labels ?? root + "/labels.csv")
        let preprocessing = images ? SlicePreprocessing(size: imageSize) : nil
        var dataset = TrainingDataset(preprocessing: preprocessing)
        var refused = 0, mismatched = 0, undecodable = 0
        for row in table.rows {
            let files = try DICOMFileDiscovery.files(in: [root + "/" + row.dir])
            var headers: [ImageHeader] = []
            for file in files {
                do {
                    headers += try ImageHeader.read(from: file).filter { header in
                        if header.seriesInstanceUID == row.seriesUID { return true }
                        mismatched += 1
                        return false
                    }
                } catch {
                    refused += 1
                    FileHandle.standardError.write(Data("skipped \(error)\n".utf8))
                }
            }
            headers.sort { ($0.instanceNumber ?? 0, $0.path, $0.frame) < ($1.instanceNumber ?? 0, $1.path, $1.frame) }
            var selected = SeriesClassifier.evenlySpaced(headers, count: maxImagesPerSeries)
            if let preprocessing {
                // An image whose pixels cannot be decoded leaves the dataset (features and slice together).
                var kept: [ImageHeader] = [], slices: [[Float]] = []
                for (header, result) in zip(selected, preprocessing.slices(of: selected)) {
                    switch result {
                    case .success(let slice): kept.append(header); slices.append(slice)
                    case .failure(let error):
                        undecodable += 1
                        FileHandle.standardError.write(Data("no pixels: \(error)\n".utf8))
                    }
                }
                selected = kept
                dataset.add(series: row, headers: selected, slices: slices)
            } else {
                dataset.add(series: row, headers: selected)
            }
        }
        let features: MetadataFeatures
        if let vocabulary {
            guard let stored = FeatureVocabulary(metadata: try SafeTensors(contentsOf: vocabulary).metadata) else {
                throw CommandFailure("\(vocabulary) has no readable vocabulary", status: ExitStatus.dataError)
            }
            features = MetadataFeatures(vocabulary: stored)
        } else {
            features = MetadataFeatures(vocabulary: .build(from: dataset.images.map(\.header), minimumSeries: minimumSeries))
        }
        let file = try dataset.encoded(with: features, extraMetadata: ["source": root])
        try file.encoded().write(to: URL(fileURLWithPath: out), options: .atomic)
        print("\(out): \(dataset.images.count) images of \(dataset.series.count) series, \(features.columns.count) features"
            + (refused > 0 ? ", \(refused) files refused" : "") + (mismatched > 0 ? ", \(mismatched) images of other series left out" : "")
            + (preprocessing.map { ", slices \($0.size)x\($0.size)" } ?? "")
            + (undecodable > 0 ? ", \(undecodable) images without decodable pixels left out" : ""))
    }
}
