import DICOM

extension SeriesClassifier {
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
        for key in order {
            guard let images = series[key], let result = classify(images) else { continue }
            if studies[result.studyInstanceUID] == nil { studyOrder.append(result.studyInstanceUID) }
            studies[result.studyInstanceUID, default: []].append(.init(classification: result, headers: images))
        }
        return studyOrder.flatMap { uid -> [SeriesClassification] in
            let study = studies[uid] ?? []
            return studyContext ? StudyContext.settle(study) : study.map(\.classification)
        }
    }
}
