import DICOM

extension SeriesClassifier {
    /// Series classified together (`classify(series:)`) by `classify(images:)` and the agent:
    /// enough for short series to fill the CNN's batches, few enough that their decoded slices
    /// (at most `cnnImagesPerSeries` each) stay small.
    public static let seriesPerBatch = 16

    /// Groups images by StudyInstanceUID/SeriesInstanceUID (in the order first seen), classifies
    /// each series and, with `studyContext`, settles pre/post-contrast T1 within each study.
    public func classify(images headers: [ImageHeader], studyContext: Bool) -> [SeriesClassification] {
        var series: [String: [ImageHeader]] = [:]
        var order: [String] = []
        for header in headers {
            let key = header.studyInstanceUID + "|" + header.seriesInstanceUID
            if series[key] == nil { order.append(key) }
            series[key, default: []].append(header)
        }
        var studies: [String: [StudyContext.Series]] = [:]
        var studyOrder: [String] = []
        // A few series at a time through the CNN: batches filled, memory bounded.
        for start in stride(from: 0, to: order.count, by: Self.seriesPerBatch) {
            let batch = order[start..<min(order.count, start + Self.seriesPerBatch)].compactMap { series[$0] }
            for (images, result) in zip(batch, classify(series: batch)) {
                guard let result else { continue }
                if studies[result.studyInstanceUID] == nil { studyOrder.append(result.studyInstanceUID) }
                studies[result.studyInstanceUID, default: []].append(.init(classification: result, headers: images))
            }
        }
        return studyOrder.flatMap { uid -> [SeriesClassification] in
            let study = studies[uid] ?? []
            return studyContext ? StudyContext.settle(study) : study.map(\.classification)
        }
    }
}
