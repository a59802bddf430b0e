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

    @Test("A file whose name is not UTF-8 is renamed in place to its escaped form, audited, and sorted")
    func nonUTF8Name() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let configuration = try Self.configuration(root)
        let file = try #require(try Paths.realSeries("dcm_qa_decubitus__S2_t1_fl2d_sag").first)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        // "schädel.dcm" in Latin-1, as an old archive names it: 0xE4 alone is not UTF-8.
        let name: [UInt8] = Array("sch".utf8) + [0xE4] + Array("del.dcm".utf8)
        let path = (Array((root + "/in/").utf8) + name + [0]).map { CChar(bitPattern: $0) }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        #expect(fd >= 0)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let (agent, running) = try Self.start(configuration)
        #expect(await eventually(120) { allFiles(under: root + "/out").count == 1 })
        agent.stop()
        try await running.value
        #expect(FolderWatcher.entries(of: root + "/in").isEmpty)
        #expect(FileManager.default.contents(atPath: try #require(allFiles(under: root + "/out").first)) == bytes)
        let renamed = JSONLinesLog<AuditRecord>.read(root + "/state/audit.jsonl").filter { $0.action == "rename" }
        #expect(renamed.map(\.destination) == [root + "/in/sch%E4del.dcm"])
        #expect(renamed.first?.reason == "the file name is not valid UTF-8")
    }

    @Test("Killed after a rewritten copy was linked and before its audit line: the restart neither copies it again nor calls it a duplicate")
    func recoveredCopyIsNotHandledAgain() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let configuration = try Self.configuration(root, action: "rewrite+copy")
        let files = try Self.copyInto(root + "/in", "dcm_qa_decubitus__S2_t1_fl2d_sag")
        var (agent, running) = try Self.start(configuration)
        #expect(await eventually(120) { allFiles(under: root + "/out").count == files })
        agent.stop()
        try await running.value
        // What a kill -9 leaves: the last copy's intent open, its audit line never written.
        let audit = root + "/state/audit.jsonl"
        var records = JSONLinesLog<AuditRecord>.read(audit)
        let lost = records.removeLast()
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        try Data(try records.flatMap { try encoder.encode($0) + [0x0A] }).write(to: URL(fileURLWithPath: audit))
        _ = try Journal(path: root + "/state/journal.jsonl").begin(.copy, source: lost.file, destination: lost.destination, rewritten: true)
        // And the status file's temporary, killed mid-write.
        let leftover = root + "/state/" + AtomicRewrite.temporaryPrefix + "status.json.x1"
        #expect(FileManager.default.createFile(atPath: leftover, contents: Data("{".utf8)))

        (agent, running) = try Self.start(configuration)
        #expect(await eventually(60) { JSONLinesLog<AuditRecord>.read(audit).count > records.count })
        // Time for a wrongly re-handled series to be quiet and handled.
        try await Task.sleep(nanoseconds: 3_000_000_000)
        agent.stop()
        try await running.value
        let after = JSONLinesLog<AuditRecord>.read(audit).dropFirst(records.count)
        #expect(after.map(\.action) == ["recovered copy"])
        #expect(!FileManager.default.fileExists(atPath: leftover))
        #expect(after.first?.sourceStamp != nil)
        #expect(allFiles(under: root + "/out").count == files)
        #expect(allFiles(under: root + "/in").count == files)
    }

    @Test("A file written up to its pixel data, paused, then finished is sorted whole, never without its pixels")
    func writerPausedAtPixelData() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var configuration = try Self.configuration(root)
        configuration.rules[0].incompleteSeconds = 60
        let files = try Paths.realSeries("dcm_qa_decubitus__S3_t1_fl2d_sag")
        let last = try #require(files.last)
        for file in files.dropLast() { try FileManager.default.copyItem(atPath: file, toPath: root + "/in/" + (file as NSString).lastPathComponent) }
        // The writer stops exactly at the PixelData tag (7FE0,0010) OW, and goes on after a pause.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: last))
        let cut = try #require(Self.ranges(of: Data([0xE0, 0x7F, 0x10, 0x00, 0x4F, 0x57]), in: bytes).last).lowerBound
        let target = root + "/in/" + (last as NSString).lastPathComponent
        #expect(FileManager.default.createFile(atPath: target, contents: bytes.prefix(cut)))
        let (agent, running) = try Self.start(configuration)
        try await Task.sleep(nanoseconds: 4_000_000_000)
        let handle = try #require(FileHandle(forWritingAtPath: target))
        handle.seekToEndOfFile()
        handle.write(bytes.suffix(from: cut))
        try handle.close()
        #expect(await eventually(120) { allFiles(under: root + "/out").count == files.count && allFiles(under: root + "/in").isEmpty })
        agent.stop()
        try await running.value
        let sorted = try WatchAgentTests.instances(under: root + "/out")
        for file in files {
            let uid = try #require(try ImageHeader.read(from: file).first).sopInstanceUID
            let place = try #require(sorted[uid]?.first)
            #expect(FileManager.default.contents(atPath: place) == FileManager.default.contents(atPath: file), "\(place)")
        }
        #expect(allFiles(under: root + "/quarantine").isEmpty)
    }

    @Test("Nesting, frame-count and image-size bombs are quarantined with their reasons; the agent survives and sorts the rest")
    func bombs() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let configuration = try Self.configuration(root)
        let staging = root + "/staging"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let template = try #require(try Paths.realSeries("dcm_qa_decubitus__S3_t1_fl2d_sag").first)
        try Self.nestedSequences(depth: 7_000).write(to: URL(fileURLWithPath: staging + "/nested.dcm"))
        try Self.modified(template, to: staging + "/frames.dcm", ["-i", "(0028,0008)=2000000000"])
        try Self.modified(template, to: staging + "/size.dcm", ["-m", "(0028,0010)=65535", "-m", "(0028,0011)=65535"])
        let (agent, running) = try Self.start(configuration)
        for name in ["nested.dcm", "frames.dcm", "size.dcm"] {
            try FileManager.default.moveItem(atPath: staging + "/" + name, toPath: root + "/in/" + name)
        }
        let files = try Self.copyInto(root + "/in", "dcm_qa_decubitus__S2_t1_fl2d_sag")
        #expect(await eventually(120) { allFiles(under: root + "/in").isEmpty })
        agent.stop()
        try await running.value
        #expect(allFiles(under: root + "/out").count == files)
        let reasons = try allFiles(under: root + "/quarantine").filter { $0.hasSuffix(".reason") }
            .map { try String(contentsOfFile: $0, encoding: .utf8) }
        #expect(reasons.count == 3)
        #expect(reasons.contains { $0.contains("nested.dcm") && $0.contains("nested 65 deep") }, "\(reasons)")
        #expect(reasons.contains { $0.contains("frames.dcm") && $0.contains("NumberOfFrames") }, "\(reasons)")
        #expect(reasons.contains { $0.contains("size.dcm") && $0.contains("65535") }, "\(reasons)")
    }

    /// A Part 10 file whose dataset is `depth` sequences of undefined length nested in one another.
    static func nestedSequences(depth: Int) -> Data {
        func u16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
        func u32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xFF) } }
        func element(_ group: UInt16, _ number: UInt16, _ vr: String, _ value: [UInt8]) -> [UInt8] {
            u16(group) + u16(number) + Array(vr.utf8) + u16(UInt16(value.count)) + value
        }
        let syntax = Array("1.2.840.10008.1.2.1".utf8) + [0]
        let meta = element(0x0002, 0x0010, "UI", syntax)
        var bytes = [UInt8](repeating: 0, count: 128) + Array("DICM".utf8)
        bytes += element(0x0002, 0x0000, "UL", u32(UInt32(meta.count))) + meta
        bytes += element(0x0008, 0x0016, "UI", Array("1.2.840.10008.5.1.4.1.1.4".utf8) + [0])
        let sequence = u16(0x0008) + u16(0x1140) + Array("SQ".utf8) + [0, 0] + u32(0xFFFF_FFFF)
        let item = u16(0xFFFE) + u16(0xE000) + u32(0xFFFF_FFFF)
        for _ in 0..<depth { bytes += sequence + item }
        return Data(bytes)
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
