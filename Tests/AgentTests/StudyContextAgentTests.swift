import Classification
import DICOM
import Foundation
import Logging
import Testing
@testable import Agent

/// The agent settles pre/post-contrast from study context as `classify`/`eval` do for a whole
/// study, whatever order the study's series arrive in: delivered series are revised when a later
/// one changes the conclusion.
@Suite("Study context in the agent", .serialized)
struct StudyContextAgentTests {
    /// Series UID → sequence, as the batch classification of the whole study settles them.
    static func batch(_ files: [String], classifier: SeriesClassifier) throws -> [String: SequenceClass] {
        let headers = try files.flatMap { try ImageHeader.read(from: $0) }
        return Dictionary(uniqueKeysWithValues: classifier.classify(images: headers, studyContext: true).map { ($0.seriesInstanceUID, $0.sequence) })
    }

    /// Feeds the study's series into the agent's drop folder in `order` (series UIDs), each once
    /// the previous one was handled, and returns the last decision per series and the folders
    /// of the delivered files.
    static func deliver(_ files: [String], order: [String], root: String, classifier: SeriesClassifier,
                        expected: [String: SequenceClass]) async throws -> (decisions: [String: SequenceClass], folders: [String: Set<String>]) {
        for folder in ["in", "out", "quarantine"] { try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true) }
        let configuration = try AgentConfiguration.parse("""
        state_directory: \(root)/state
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: 0.5
            action: move
            output: \(root)/out
            layout: "{SeriesInstanceUID}/{sequence}/{SOPInstanceUID}.dcm"
            quarantine: \(root)/quarantine
        """, file: "test.yaml")
        let agent = try WatchAgent(configuration: configuration, configurationPath: nil, classifier: classifier, logger: Logger(label: "test"))
        let running = Task { try await agent.run() }
        var bySeries: [String: [String]] = [:]
        for file in files { bySeries[try #require(try ImageHeader.read(from: file).first).seriesInstanceUID, default: []].append(file) }
        func decisions() -> [String: SequenceClass] {
            var result: [String: SequenceClass] = [:]
            for decision in JSONLinesLog<SeriesDecision>.read(root + "/state/series.jsonl") {
                result[decision.classification.seriesInstanceUID] = decision.classification.sequence
            }
            return result
        }
        for (index, series) in order.enumerated() {
            for file in bySeries[series] ?? [] {
                try FileManager.default.copyItem(atPath: file, toPath: root + "/in/" + (file as NSString).lastPathComponent)
            }
            #expect(await eventually(60) { decisions().count == index + 1 }, "series \(series) not handled")
        }
        // Revisions follow the last series; wait for them, or for the time to run out.
        _ = await eventually(30) { decisions() == expected && allFiles(under: root + "/in").isEmpty }
        try await Task.sleep(nanoseconds: 1_000_000_000)
        agent.stop()
        try await running.value
        var folders: [String: Set<String>] = [:]
        for path in allFiles(under: root + "/out") {
            let parts = path.dropFirst(root.count + 5).split(separator: "/").map(String.init)
            if parts.count == 3 { folders[parts[0], default: []].insert(parts[1]) }
        }
        return (decisions(), folders)
    }

    @Test("Series arriving in acquisition and in shuffled order end where the whole study's classification puts them")
    func agentMatchesBatch() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let files = try WatchAgentTests.generatedStudy(into: root + "/generated")
        let classifier = try SeriesClassifier(modelDirectory: Paths.models)
        let expected = try Self.batch(files, classifier: classifier)
        try #require(expected.count >= 10, "the generated study has a full protocol")
        // The study must put study context to work: some T1 whose models' answer it changes.
        let alone = Dictionary(uniqueKeysWithValues: try files.flatMap { try ImageHeader.read(from: $0) }
            .reduce(into: [String: [ImageHeader]]()) { $0[$1.seriesInstanceUID, default: []].append($1) }
            .compactMap { uid, headers in classifier.classify(headers).map { (uid, $0.sequence) } })
        try #require(alone != expected, "study context changes nothing in this study: the test would prove nothing")

        let acquisition = try files.map { try #require(try ImageHeader.read(from: $0).first) }
            .sorted { ($0.seriesNumber ?? 0) < ($1.seriesNumber ?? 0) }.map(\.seriesInstanceUID)
        var seen = Set<String>()
        let ordered = acquisition.filter { seen.insert($0).inserted }
        // Shuffled: by the UIDs' last digits, an order unrelated to acquisition, the same on every run.
        let shuffled = ordered.sorted { String($0.reversed()) < String($1.reversed()) }
        // In acquisition order a T1 is delivered before the perfusion that shows it was pre-contrast.
        for (name, order) in [("acquisition", ordered), ("shuffled", shuffled)] {
            let (decisions, folders) = try await Self.deliver(files, order: order, root: root + "/" + name, classifier: classifier, expected: expected)
            #expect(decisions == expected, "\(name): the agent's last decisions differ from the whole study's")
            for (series, sequence) in expected {
                #expect(folders[series] == [sequence.rawValue], "\(name): files of \(series) in \(folders[series] ?? [])")
            }
        }
    }
}
