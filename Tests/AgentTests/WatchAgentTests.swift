import Classification
import DICOM
import Foundation
import Logging
import Testing
@testable import Agent

/// The agent end to end: real files, real inotify, the real shipped model.
@Suite("Watch agent end to end", .serialized)
struct WatchAgentTests {
    /// Small real series: 2D T1 (Siemens), DTI (Philips), 3D T1 post-contrast (Siemens, RIDER).
    static let series = ["dcm_qa_decubitus__S3_t1_fl2d_sag", "dcm_qa_philips__S601_dti_ax", "dbdicom_rider__S14_sag_3d_gre_+c"]

    static func configuration(_ root: String, action: String = "rewrite+move", extra: String = "") -> String {
        """
        state_directory: \(root)/state
        rescan_seconds: 600
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: 1
            action: \(action)
            output: \(root)/out
            layout: "{PatientID}/{SeriesNumber}_{sequence}_{orientation}/{SOPInstanceUID}.dcm"
            quarantine: \(root)/quarantine
        \(extra)
        """
    }

    /// SOPInstanceUID → path of every DICOM file under `folder`.
    static func instances(under folder: String) throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for path in allFiles(under: folder) where !path.hasSuffix(".reason") && !path.hasSuffix(".json") {
            guard let header = try? ImageHeader.read(from: path).first else { continue }
            result[header.sopInstanceUID, default: []].append(path)
        }
        return result
    }

    /// One synthetic study made by the training corpus generator (Python, as CI installs it).
    static func generatedStudy(into folder: String, seed: Int = 11) throws -> [String] {
        let result = try run("/usr/bin/env", ["python3", "-m", "training.synth", "--out", folder, "--studies", "1", "--seed", String(seed),
                                              "--jobs", "1", "--max-images", "3"], directory: Paths.repositoryRoot)
        guard result.status == 0 else { throw GeneratorFailure(message: result.error) }
        return allFiles(under: folder).filter { $0.hasSuffix(".dcm") }
    }

    struct GeneratorFailure: Error { let message: String }

    /// The decoded pixels of every frame.
    static func pixels(_ path: String) throws -> [[Float]] {
        let file = try DICOMFile.open(path, headerOnly: false)
        return try ImageHeader.read(from: path).map { try file.frame($0.frame, header: $0).values }
    }

    @Test("Series copied in pieces, by rename and slowly are sorted once each, pixels unchanged, junk quarantined")
    func sortsArrivingSeries() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["in", "out", "quarantine"] { try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true) }
        let configuration = try AgentConfiguration.parse(Self.configuration(root), file: "test.yaml")
        let agent = try WatchAgent(configuration: configuration, configurationPath: nil,
                                   classifier: try SeriesClassifier(modelDirectory: Paths.models),
                                   logger: Logger(label: "test"))
        let running = Task { try await agent.run() }

        // Real series from three vendors and one generated study (training/synth) of five series.
        let generated = try Self.generatedStudy(into: root + "/generated")
        var sources = try Self.series.flatMap { try Paths.realSeries($0) } + generated
        var generator = SystemRandomNumberGenerator()
        sources.shuffle(using: &generator)
        let expected = try Dictionary(uniqueKeysWithValues: sources.map { (try #require(try ImageHeader.read(from: $0).first).sopInstanceUID, $0) })
        // One file is written slowly: half, a pause longer than the quiet period, then the rest.
        let slow = sources.removeLast()
        let slowTask = Task.detached {
            let data = try Data(contentsOf: URL(fileURLWithPath: slow))
            // A failure shows in the next line: no file to open.
            _ = FileManager.default.createFile(atPath: root + "/in/slow.dcm", contents: nil)
            let handle = try #require(FileHandle(forWritingAtPath: root + "/in/slow.dcm"))
            handle.write(data.prefix(data.count / 2))
            try await Task.sleep(nanoseconds: 2_500_000_000)
            handle.write(data.suffix(from: data.count / 2))
            try handle.close()
        }
        // A subfolder made after the watch started is watched too.
        try FileManager.default.createDirectory(atPath: root + "/in/sub", withIntermediateDirectories: true)
        for (index, source) in sources.enumerated() {
            let name = "\(index)-" + (source as NSString).lastPathComponent
            if index % 3 == 0 {
                // Written under a partial name, then renamed into place.
                try FileManager.default.copyItem(atPath: source, toPath: root + "/in/" + name + ".part")
                try FileManager.default.moveItem(atPath: root + "/in/" + name + ".part", toPath: root + "/in/sub/" + name)
            } else {
                try FileManager.default.copyItem(atPath: source, toPath: root + "/in/" + name)
            }
        }
        try "not an image".write(toFile: root + "/in/notes.txt", atomically: false, encoding: .utf8)
        try await slowTask.value

        let done = try await eventually(180) { try Self.instances(under: root + "/out").count == expected.count }
        agent.stop()
        try await running.value
        #expect(done)

        let sorted = try Self.instances(under: root + "/out")
        var decisions: [String: SeriesClassification] = [:]
        for decision in JSONLinesLog<SeriesDecision>.read(root + "/state/series.jsonl") {
            decisions[decision.classification.seriesInstanceUID] = decision.classification
        }
        #expect(Set(sorted.keys) == Set(expected.keys))
        for (uid, paths) in sorted {
            #expect(paths.count == 1, "SOPInstanceUID \(uid) at \(paths)")
            guard let path = paths.first, let original = expected[uid] else { continue }
            #expect(try Self.pixels(path) == Self.pixels(original), "pixels of \(path)")
            let header = try #require(try ImageHeader.read(from: path).first)
            let decision = try #require(decisions[header.seriesInstanceUID])
            #expect(header.seriesDescription == decision.sequence.rawValue + " " + decision.orientation.rawValue)
        }
        #expect(allFiles(under: root + "/in").isEmpty)
        let quarantined = allFiles(under: root + "/quarantine").map { ($0 as NSString).lastPathComponent }
        #expect(quarantined.sorted() == ["notes.txt", "notes.txt.reason"])
        let audit = JSONLinesLog<AuditRecord>.read(root + "/state/audit.jsonl")
        // Every arriving file moved once; a series that study context revised later (the perfusion
        // of the generated study arrives after its T1) is moved again within the output.
        #expect(audit.filter { $0.action == "rewrite+move" && $0.file.hasPrefix(root + "/in/") }.count == expected.count)
        let revisedFiles = audit.filter { $0.action == "relabel" }.map { revision in
            audit.filter { $0.series == revision.series && $0.file.hasPrefix(root + "/in/") }.count
        }.reduce(0, +)
        #expect(audit.filter { $0.action == "rewrite+move" && $0.file.hasPrefix(root + "/out/") }.count == revisedFiles)
        #expect(audit.filter { $0.action == "quarantine" }.map { ($0.file as NSString).lastPathComponent } == ["notes.txt"])
        let counters = await agent.currentCounters()
        #expect(counters.seriesClassified == Self.series.count + Set(try generated.map { try #require(try ImageHeader.read(from: $0).first).seriesInstanceUID }).count)
        #expect(counters.errors == 0)
    }

    @Test("Files hard-linked into the drop folder (IN_CREATE alone, no write) are handled without a rescan; the emptied subfolder goes")
    func hardLinkedFiles() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["in", "out", "quarantine", "stage"] { try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true) }
        // rescan_seconds 600: only inotify can bring the files in time.
        let configuration = try AgentConfiguration.parse(Self.configuration(root), file: "test.yaml")
        let agent = try WatchAgent(configuration: configuration, configurationPath: nil,
                                   classifier: try SeriesClassifier(modelDirectory: Paths.models), logger: Logger(label: "test"))
        let running = Task { try await agent.run() }
        try await Task.sleep(nanoseconds: 500_000_000)
        let files = try Paths.realSeries("dcm_qa_decubitus__S3_t1_fl2d_sag")
        var expected = 0
        // Into a folder made once the agent watches (its scan may come before the links), and into the drop folder itself.
        try FileManager.default.createDirectory(atPath: root + "/in/series", withIntermediateDirectories: false)
        for (index, file) in files.enumerated() {
            let stage = root + "/stage/" + (file as NSString).lastPathComponent
            try FileManager.default.copyItem(atPath: file, toPath: stage)
            try FileManager.default.linkItem(atPath: stage, toPath: root + (index % 2 == 0 ? "/in/series/" : "/in/") + (file as NSString).lastPathComponent)
            expected += 1
        }
        let sorted = await eventually(60) { ((try? Self.instances(under: root + "/out")) ?? [:]).count == expected }
        // The subfolder the moves emptied goes once it stayed empty for the quiet time; the drop folder stays.
        let removed = await eventually(15) { !FileManager.default.fileExists(atPath: root + "/in/series") }
        agent.stop()
        try await running.value
        #expect(sorted, "hard-linked files were not handled within a minute")
        #expect(removed, "the emptied subfolder of the drop folder is still there")
        #expect(FileSystem.isDirectory(root + "/in"))
    }

    @Test("A late file of a handled series is handled the same way, not as a new series")
    func lateFile() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["in", "out", "quarantine"] { try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true) }
        let configuration = try AgentConfiguration.parse(Self.configuration(root, action: "copy"), file: "test.yaml")
        let agent = try WatchAgent(configuration: configuration, configurationPath: nil,
                                   classifier: try SeriesClassifier(modelDirectory: Paths.models), logger: Logger(label: "test"))
        let running = Task { try await agent.run() }
        let files = try Paths.realSeries("dcm_qa_decubitus__S3_t1_fl2d_sag")
        for file in files.dropLast() { try FileManager.default.copyItem(atPath: file, toPath: root + "/in/" + (file as NSString).lastPathComponent) }
        #expect(try await eventually(120) { try Self.instances(under: root + "/out").count == files.count - 1 })
        let folders = Set(allFiles(under: root + "/out").map { ($0 as NSString).deletingLastPathComponent })
        let last = try #require(files.last)
        try FileManager.default.copyItem(atPath: last, toPath: root + "/in/" + (last as NSString).lastPathComponent)
        #expect(try await eventually(120) { try Self.instances(under: root + "/out").count == files.count })
        agent.stop()
        try await running.value
        #expect(Set(allFiles(under: root + "/out").map { ($0 as NSString).deletingLastPathComponent }) == folders)
        // A copy rule leaves the sources in place, and a rescan does not handle them twice.
        #expect(allFiles(under: root + "/in").count == files.count)
        let counters = await agent.currentCounters()
        #expect(counters.seriesClassified == 1)
        #expect(counters.filesDelivered == files.count)
    }
}
