#if canImport(Glibc)
import Glibc
#endif
import Classification
import DICOM
import Foundation
import Logging
import Testing
@testable import Agent

/// Hostile and broken input, full and read-only outputs, and an inotify overflow: nothing is lost.
@Suite("Agent under bad input and bad conditions", .serialized)
struct RobustnessTests {
    /// Whether this machine lets the tests mount a tmpfs (root with CAP_SYS_ADMIN).
    static let canMount: Bool = {
        let point = NSTemporaryDirectory() + "mrsort-mount-probe-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: point) }
        guard mount("tmpfs", point, "tmpfs", 0, "size=64k") == 0 else { return false }
        umount(point)
        return true
    }()

    static func configuration(_ root: String, action: String = "move", duplicates: String = "replace-identical", output: String? = nil) throws -> AgentConfiguration {
        for folder in ["in", "out", "quarantine"] { try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true) }
        return try AgentConfiguration.parse("""
        state_directory: \(root)/state
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: 1
            incomplete_seconds: 2
            action: \(action)
            output: \(output ?? root + "/out")
            layout: "{PatientID}/{SeriesNumber}_{sequence}/{SOPInstanceUID}.dcm"
            quarantine: \(root)/quarantine
            duplicates: \(duplicates)
        """, file: "test.yaml")
    }

    static func start(_ configuration: AgentConfiguration) throws -> (WatchAgent, Task<Void, any Error>) {
        let agent = try WatchAgent(configuration: configuration, configurationPath: nil,
                                   classifier: try SeriesClassifier(modelDirectory: Paths.models), logger: Logger(label: "test"))
        return (agent, Task { try await agent.run() })
    }

    /// A copy of a real file changed by DCMTK's dcmodify (the independent tool).
    static func modified(_ source: String, to path: String, _ arguments: [String]) throws {
        try FileManager.default.copyItem(atPath: source, toPath: path)
        let result = try run("/usr/bin/dcmodify", ["-nb"] + arguments + [path])
        guard result.status == 0 else { throw FileSystemError(path: path, operation: "dcmodify", reason: result.error) }
    }

    @Test("Junk, truncated, UID-less, hostile and duplicate files: each quarantined with a reason or sorted safely")
    func badInput() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (agent, running) = try Self.start(try Self.configuration(root))
        let files = try Paths.realSeries("dcm_qa_decubitus__S2_t1_fl2d_sag")
        let staging = root + "/staging"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        // Prepared outside the drop folder, then renamed in, as a careful sender does.
        try Data((0..<4096).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: staging + "/junk.bin"))
        try Data(try Data(contentsOf: URL(fileURLWithPath: files[0])).prefix(2000)).write(to: URL(fileURLWithPath: staging + "/truncated.dcm"))
        try Self.modified(files[1], to: staging + "/no-series-uid.dcm", ["-ea", "(0020,000e)"])
        try Self.modified(files[2], to: staging + "/hostile.dcm", ["-m", "(0010,0020)=../../etc"])
        try FileManager.default.copyItem(atPath: files[3], toPath: staging + "/duplicate-a.dcm")
        for name in ["junk.bin", "truncated.dcm", "no-series-uid.dcm", "hostile.dcm", "duplicate-a.dcm"] {
            try FileManager.default.moveItem(atPath: staging + "/" + name, toPath: root + "/in/" + name)
        }
        #expect(await eventually(120) { allFiles(under: root + "/in").isEmpty })
        // The same instance again, byte-identical, then with different content under the same UID.
        try FileManager.default.copyItem(atPath: files[3], toPath: root + "/in/duplicate-b.dcm")
        try Self.modified(files[3], to: staging + "/duplicate-c.dcm", ["-m", "(0008,103e)=changed"])
        try FileManager.default.moveItem(atPath: staging + "/duplicate-c.dcm", toPath: root + "/in/duplicate-c.dcm")
        #expect(await eventually(120) { allFiles(under: root + "/in").isEmpty })
        agent.stop()
        try await running.value

        let sorted = allFiles(under: root + "/out")
        #expect(sorted.allSatisfy { $0.hasPrefix(root + "/out/") })
        #expect(sorted.filter { $0.contains("/_._.._etc/") }.count == 1, "hostile PatientID sorted inside the output: \(sorted)")
        let duplicateUID = try #require(try ImageHeader.read(from: files[3]).first).sopInstanceUID
        #expect(sorted.filter { $0.hasSuffix("/" + duplicateUID + ".dcm") }.count == 1)
        #expect(sorted.count == 2)
        let reasons = try allFiles(under: root + "/quarantine").filter { $0.hasSuffix(".reason") }.map { try String(contentsOfFile: $0, encoding: .utf8) }
        func reason(_ name: String) -> String? { reasons.first { $0.contains("/in/" + name + "\n") } }
        #expect(reason("junk.bin")?.contains("not a DICOM file") == true)
        #expect(reason("truncated.dcm")?.contains("truncated") == true || reason("truncated.dcm")?.contains("not a DICOM") == true)
        #expect(reason("no-series-uid.dcm")?.contains("SeriesInstanceUID") == true)
        #expect(reason("duplicate-c.dcm")?.contains("a different file already holds") == true)
        #expect(reasons.count == 4)
        #expect(allFiles(under: root + "/quarantine").filter { !$0.hasSuffix(".reason") }.count == 4)
        let audit = JSONLinesLog<AuditRecord>.read(root + "/state/audit.jsonl")
        #expect(audit.contains { $0.file.hasSuffix("/duplicate-b.dcm") && $0.reason == "identical file already at the destination" })
    }

    @Test("A full output disk loses nothing: what does not fit stays in the drop folder", .enabled(if: canMount))
    func fullDisk() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let output = root + "/small"
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        #expect(mount("tmpfs", output, "tmpfs", 0, "size=1m") == 0)
        defer { umount(output) }
        let (agent, running) = try Self.start(try Self.configuration(root, output: output))
        // 12 files of 260 kB into 1 MB.
        let files = try Paths.realSeries("dcm_qa_decubitus__S3_t1_fl2d_sag")
        var expected = Set<String>()
        for file in files {
            expected.insert(try #require(try ImageHeader.read(from: file).first).sopInstanceUID)
            try FileManager.default.copyItem(atPath: file, toPath: root + "/in/" + (file as NSString).lastPathComponent)
        }
        let audit = root + "/state/audit.jsonl"
        #expect(await eventually(120) { JSONLinesLog<AuditRecord>.read(audit).count >= files.count })
        agent.stop()
        try await running.value

        let records = JSONLinesLog<AuditRecord>.read(audit)
        #expect(records.contains { $0.action == "error" && ($0.reason ?? "").contains("No space left on device") })
        let sorted = try WatchAgentTests.instances(under: output)
        let waiting = try WatchAgentTests.instances(under: root + "/in")
        #expect(!sorted.isEmpty && !waiting.isEmpty)
        #expect(Set(sorted.keys).union(waiting.keys) == expected)
        #expect(Set(sorted.keys).isDisjoint(with: waiting.keys))
        #expect(allFiles(under: output).allSatisfy { !$0.contains(AtomicRewrite.temporaryPrefix) })
    }

    @Test("A read-only output keeps the files in the drop folder; once writable, the retry sorts them, no rescan needed", .enabled(if: canMount))
    func readOnlyOutput() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let output = root + "/readonly"
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        #expect(mount("tmpfs", output, "tmpfs", UInt(MS_RDONLY), "size=4m") == 0)
        defer { umount(output) }
        let (agent, running) = try Self.start(try Self.configuration(root, output: output))
        let files = try Self.copyInto(root + "/in", "dcm_qa_decubitus__S3_t1_fl2d_sag")
        #expect(await eventually(120) { JSONLinesLog<AuditRecord>.read(root + "/state/audit.jsonl").count >= files })
        #expect(JSONLinesLog<AuditRecord>.read(root + "/state/audit.jsonl").allSatisfy { ($0.reason ?? "").contains("Read-only file system") })
        #expect(allFiles(under: root + "/in").count == files)
        // The series is done (its files left in place) before the output becomes writable.
        #expect(await eventually(120) { JSONLinesLog<SeriesDecision>.read(root + "/state/series.jsonl").count == 1 })
        #expect(mount("tmpfs", output, "tmpfs", UInt(MS_REMOUNT), "size=4m") == 0)
        // The periodic rescan (rescan_seconds 300) is out of reach: the back-off retry (10 s, 20 s …) sorts them.
        #expect(await eventually(120) { allFiles(under: output).count == files })
        agent.stop()
        try await running.value
        #expect(allFiles(under: root + "/in").isEmpty)
    }

    @Test("A read-only drop folder: nothing is copied out that cannot be moved, every file stays in one place", .enabled(if: canMount))
    func readOnlyDropFolder() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let configuration = try Self.configuration(root)
        #expect(mount("tmpfs", root + "/in", "tmpfs", 0, "size=8m") == 0)
        defer { umount(root + "/in") }
        let files = try Self.copyInto(root + "/in", "dcm_qa_decubitus__S3_t1_fl2d_sag")
        #expect(mount("tmpfs", root + "/in", "tmpfs", UInt(MS_REMOUNT | MS_RDONLY), "size=8m") == 0)
        let (agent, running) = try Self.start(configuration)
        #expect(await eventually(120) { JSONLinesLog<AuditRecord>.read(root + "/state/audit.jsonl").count >= files })
        agent.stop()
        try await running.value
        #expect(allFiles(under: root + "/in").count == files)
        #expect(allFiles(under: root + "/out").isEmpty)
        #expect(JSONLinesLog<AuditRecord>.read(root + "/state/audit.jsonl").allSatisfy { ($0.reason ?? "").contains("folder is not writable") })
    }

    static func copyInto(_ folder: String, _ series: String) throws -> Int {
        let files = try Paths.realSeries(series)
        for file in files { try FileManager.default.copyItem(atPath: file, toPath: folder + "/" + (file as NSString).lastPathComponent) }
        return files.count
    }

    @Test("A flood of 20,000 files while the agent is stalled overflows inotify; the rescan sorts every one",
          .enabled(if: FileSystem.isDirectory("/dev/shm")))
    func flood() async throws {
        // tmpfs: the test is about events, not about disk speed.
        let root = "/dev/shm/mrsort-flood-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root) }
        _ = try Self.configuration(root)
        try """
        state_directory: \(root)/state
        rescan_seconds: 3600
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: 1
            action: move
            output: \(root)/out
            layout: "{SeriesNumber}/{SOPInstanceUID}.dcm"
            quarantine: \(root)/quarantine
        """.write(toFile: root + "/mrsort.yaml", atomically: true, encoding: .utf8)
        let process = try ServiceTests.start(root + "/mrsort.yaml")
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(await eventually(120) { FileManager.default.fileExists(atPath: root + "/state/status.json") })
        // Stalled (as by a hung disk) while 20,000 files arrive: 40,000 events, the kernel keeps 16,384.
        kill(process.processIdentifier, SIGSTOP)
        // 20,000 distinct instances: one real file with its SOPInstanceUID's digits rewritten in place.
        let template = try #require(try Paths.realSeries("dcm_qa_philips__S601_dti_ax").first)
        let uid = try #require(try ImageHeader.read(from: template).first).sopInstanceUID
        let bytes = try Data(contentsOf: URL(fileURLWithPath: template))
        let ranges = Self.ranges(of: Data(uid.utf8), in: bytes)
        #expect(ranges.count == 2)
        let count = 20_000
        for index in 0..<count {
            var copy = bytes
            let suffix = Data(String(format: "%05d", index).utf8)
            for range in ranges { copy.replaceSubrange((range.upperBound - suffix.count)..<range.upperBound, with: suffix) }
            try copy.write(to: URL(fileURLWithPath: root + "/in/\(index).dcm"))
        }
        kill(process.processIdentifier, SIGCONT)
        let done = await eventually(300) { allFiles(under: root + "/in").isEmpty }
        try await Task.sleep(nanoseconds: 2_500_000_000)
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(done)
        let status = try JSONDecoder.iso8601.decode(AgentStatus.self, from: try Data(contentsOf: URL(fileURLWithPath: root + "/state/status.json")))
        #expect(status.counters.overflows > 0)
        #expect(status.counters.filesDelivered == count)
        #expect(allFiles(under: root + "/out").count == count)
        #expect(allFiles(under: root + "/quarantine").isEmpty)
    }

    static func ranges(of needle: Data, in haystack: Data) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start = haystack.startIndex
        while let found = haystack.range(of: needle, in: start..<haystack.endIndex) {
            result.append(found)
            start = found.upperBound
        }
        return result
    }
}
