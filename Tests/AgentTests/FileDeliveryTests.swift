import DICOM
import Foundation
import Testing
@testable import Agent

@Suite("Journaled delivery and recovery")
final class FileDeliveryTests {
    let root: String
    let journal: Journal
    let delivery: FileDelivery

    init() throws {
        root = try Paths.temporaryDirectory()
        journal = try Journal(path: root + "/journal.jsonl")
        delivery = FileDelivery(journal: journal)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// A copy of a real DICOM file at `root/name`.
    func source(_ name: String = "in/a.dcm", from series: String = "dcm_qa_decubitus__S2_t1_fl2d_sag") throws -> String {
        let path = root + "/" + name
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try #require(try Paths.realSeries(series).first), toPath: path)
        return path
    }

    func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    @Test("A move on one file system leaves the file only at the destination, with nothing open in the journal")
    func moveSameFileSystem() throws {
        let source = try source()
        let original = try #require(bytes(source))
        let outcome = try delivery.deliver(source, to: root + "/out/x/a.dcm", mode: .move, duplicates: .replaceIdentical)
        #expect(outcome == .delivered(root + "/out/x/a.dcm"))
        #expect(!FileManager.default.fileExists(atPath: source))
        #expect(bytes(root + "/out/x/a.dcm") == original)
        #expect(journal.openIntents().isEmpty)
        #expect(allFiles(under: root + "/out").count == 1)
    }

    @Test("A move across file systems copies, verifies, then removes the source",
          .enabled(if: FileSystem.isDirectory("/dev/shm") && FileSystem.stamp("/etc/hostname")?.device != nil))
    func moveAcrossFileSystems() throws {
        let shm = "/dev/shm/mrsort-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: shm, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: shm) }
        let source = try source()
        let original = try #require(bytes(source))
        let sourceDevice = try #require(FileSystem.stamp(source)).device
        let outcome = try delivery.deliver(source, to: shm + "/a.dcm", mode: .move, duplicates: .skip)
        #expect(outcome == .delivered(shm + "/a.dcm"))
        #expect(try #require(FileSystem.stamp(shm + "/a.dcm")).device != sourceDevice)
        #expect(bytes(shm + "/a.dcm") == original)
        #expect(!FileManager.default.fileExists(atPath: source))
        #expect(allFiles(under: shm) == [shm + "/a.dcm"])
    }

    @Test("A copy keeps the source; a copy with rewrite changes only the copy")
    func copyAndRewrite() throws {
        let source = try source()
        let original = try #require(bytes(source))
        _ = try delivery.deliver(source, to: root + "/out/plain.dcm", mode: .copy, duplicates: .skip)
        #expect(bytes(source) == original)
        #expect(bytes(root + "/out/plain.dcm") == original)
        let rewrite = AtomicRewrite(changes: [.seriesDescription: "t1_pre sagittal"])
        _ = try delivery.deliver(source, to: root + "/out/rewritten.dcm", mode: .copy, rewrite: rewrite, duplicates: .skip)
        #expect(bytes(source) == original)
        var expected = try #require(try ImageHeader.read(from: source).first)
        #expect(expected.seriesDescription != "t1_pre sagittal")
        // Every attribute the reader knows is the source's, but the description; the pixel data
        // (the file's last rows × columns × 2 bytes, 16-bit, uncompressed) is byte for byte the same.
        let rewritten = try #require(try ImageHeader.read(from: root + "/out/rewritten.dcm").first)
        expected.seriesDescription = "t1_pre sagittal"
        expected.path = rewritten.path
        #expect(rewritten == expected)
        let pixels = try #require(expected.rows) * (try #require(expected.columns)) * 2
        #expect(try #require(bytes(root + "/out/rewritten.dcm")).suffix(pixels) == original.suffix(pixels))
        #expect(try #require(bytes(root + "/out/rewritten.dcm")).count > original.count, "the Original Attributes Sequence was added")
        #expect(allFiles(under: root + "/out").count == 2)
    }

    @Test("Delivering a file onto its own path, however spelt, keeps it; a rewrite is applied in place")
    func ontoItself() throws {
        let placed = try source("out/x/a.dcm")
        let original = try #require(bytes(placed))
        let spelt = root + "/out/./x/../x/a.dcm"
        #expect(try delivery.deliver(placed, to: spelt, mode: .move, duplicates: .skip) == .alreadyThere(spelt))
        #expect(bytes(placed) == original)
        let rewrite = AtomicRewrite(changes: [.seriesDescription: "t1_pre sagittal"])
        #expect(try delivery.deliver(placed, to: placed, mode: .move, rewrite: rewrite, duplicates: .replaceIdentical) == .alreadyThere(placed))
        #expect(try ImageHeader.read(from: placed).first?.seriesDescription == "t1_pre sagittal")
        #expect(allFiles(under: root + "/out") == [placed])
        #expect(journal.openIntents().isEmpty)
    }

    @Test("Duplicates: identical bytes are already there; different ones are kept or set aside by policy")
    func duplicates() throws {
        let existing = try source("out/a.dcm")
        let identical = try source("in/same.dcm")
        #expect(try delivery.deliver(identical, to: existing, mode: .move, duplicates: .replaceIdentical) == .alreadyThere(existing))
        #expect(!FileManager.default.fileExists(atPath: identical))

        let different = try source("in/other.dcm", from: "dcm_qa_decubitus__S3_t1_fl2d_sag")
        #expect(try delivery.deliver(different, to: existing, mode: .move, duplicates: .replaceIdentical) == .collision(existing: existing))
        #expect(FileManager.default.fileExists(atPath: different))
        #expect(try delivery.deliver(different, to: existing, mode: .move, duplicates: .skip) == .collision(existing: existing))
        let kept = try delivery.deliver(different, to: existing, mode: .move, duplicates: .keepBoth)
        #expect(kept == .delivered(root + "/out/a~1.dcm"))
        #expect(!FileManager.default.fileExists(atPath: different))
        let again = try source("in/same.dcm")
        #expect(try delivery.deliver(again, to: existing, mode: .move, duplicates: .skip) == .collision(existing: existing))
        #expect(FileManager.default.fileExists(atPath: again))
    }

    @Test("Recovery finishes a move killed after the link and before the source's removal")
    func recoverHalfDoneMove() throws {
        let source = try source()
        let destination = root + "/out/a.dcm"
        try FileSystem.createDirectory(root + "/out")
        _ = try journal.begin(.move, source: source, destination: destination, temporary: root + "/out/.mrsort-tmp-a.dcm.x")
        #expect(link(source, destination) == 0)
        let recoveries = try Journal(path: root + "/journal.jsonl").recover()
        #expect(recoveries.map(\.outcome) == ["finished; source removed"])
        #expect(!FileManager.default.fileExists(atPath: source))
        #expect(FileManager.default.fileExists(atPath: destination))
        #expect(try Journal(path: root + "/journal.jsonl").openIntents().isEmpty)
    }

    @Test("Recovery rolls back a copy killed mid-write: the temporary goes, the source stays, no destination")
    func recoverPartialCopy() throws {
        let source = try source()
        let original = try #require(bytes(source))
        let temporary = root + "/out/.mrsort-tmp-a.dcm.y"
        try FileSystem.createDirectory(root + "/out")
        _ = try journal.begin(.move, source: source, destination: root + "/out/a.dcm", temporary: temporary)
        try Data(original.prefix(1000)).write(to: URL(fileURLWithPath: temporary))
        // A torn line after the intent, as a crash mid-append leaves it.
        let handle = try #require(FileHandle(forWritingAtPath: root + "/journal.jsonl"))
        handle.seekToEndOfFile()
        handle.write(Data("{\"id\":9,\"int".utf8))
        try handle.close()
        let recoveries = try journal.recover()
        #expect(recoveries.map(\.outcome) == ["rolled back; source untouched"])
        #expect(bytes(source) == original)
        #expect(allFiles(under: root + "/out").isEmpty)
    }

    @Test("Recovery removes a rewrite's temporary and leaves the original whole")
    func recoverRewrite() throws {
        let source = try source()
        let original = try #require(bytes(source))
        _ = try journal.begin(.rewrite, source: source)
        let prepared = try AtomicRewrite(changes: [.seriesDescription: "x"]).prepare(source)
        #expect(FileManager.default.fileExists(atPath: prepared.temporary))
        let recoveries = try journal.recover()
        #expect(recoveries.first?.outcome.hasPrefix("removed 1 temporary file") == true)
        #expect(!FileManager.default.fileExists(atPath: prepared.temporary))
        #expect(bytes(source) == original)
    }

    @Test("Recovery removes a delivery's temporary and that temporary's own rewrite leftover")
    func recoverRewrittenCopy() throws {
        let source = try source()
        let original = try #require(bytes(source))
        let temporary = AtomicRewrite.temporaryPath(for: root + "/out/a.dcm")
        try FileSystem.createDirectory(root + "/out")
        _ = try journal.begin(.move, source: source, destination: root + "/out/a.dcm", temporary: temporary)
        try FileSystem.copyVerified(source, to: temporary)
        _ = try AtomicRewrite(changes: [.seriesDescription: "x"]).prepare(temporary)
        #expect(allFiles(under: root + "/out").count == 2)
        #expect(try journal.recover().map(\.outcome) == ["rolled back; source untouched"])
        #expect(allFiles(under: root + "/out").isEmpty)
        #expect(bytes(source) == original)
    }

    @Test("Recovery never touches a copy's source, and removes a move's source only when it is what was delivered")
    func recoveryKeepsWhatWasNotDelivered() throws {
        try FileSystem.createDirectory(root + "/out")
        // A copy whose destination is complete: the source stays.
        let copied = try source("in/copied.dcm")
        _ = try journal.begin(.copy, source: copied, destination: root + "/out/copied.dcm")
        try FileSystem.copyVerified(copied, to: root + "/out/copied.dcm")
        // A move whose source a writer changed after the step began: both stay.
        let changed = try source("in/changed.dcm")
        _ = try journal.begin(.move, source: changed, destination: root + "/out/changed.dcm")
        try FileSystem.copyVerified(changed, to: root + "/out/changed.dcm")
        let handle = try #require(FileHandle(forWritingAtPath: changed))
        handle.seekToEndOfFile()
        handle.write(Data(repeating: 0, count: 16))
        try handle.close()
        // A move whose destination holds other bytes (not a rewrite): both stay.
        let differing = try source("in/differing.dcm")
        _ = try journal.begin(.move, source: differing, destination: root + "/out/differing.dcm")
        try Data("not the same".utf8).write(to: URL(fileURLWithPath: root + "/out/differing.dcm"))
        // A rewritten move whose source is unchanged: the source goes.
        let rewritten = try source("in/rewritten.dcm")
        _ = try journal.begin(.move, source: rewritten, destination: root + "/out/rewritten.dcm", rewritten: true)
        try FileSystem.copyVerified(rewritten, to: root + "/out/rewritten.dcm")
        try AtomicRewrite(changes: [.seriesDescription: "x"]).apply(to: root + "/out/rewritten.dcm")

        let recoveries = try Journal(path: root + "/journal.jsonl").recover()
        #expect(recoveries.map(\.outcome) == [
            "already complete", "source changed since the move began; both kept",
            "destination differs from the source; both kept", "finished; source removed",
        ])
        #expect(recoveries.map(\.delivered) == [true, true, true, true])
        for kept in [copied, changed, differing] { #expect(FileManager.default.fileExists(atPath: kept)) }
        #expect(!FileManager.default.fileExists(atPath: rewritten))
        #expect(allFiles(under: root + "/out").count == 4)
    }

    @Test("A source that vanishes before a batched move commits leaves the destination as the file's only copy")
    func vanishedSourceKeepsDestination() throws {
        let source = try source()
        let original = try #require(bytes(source))
        let batch = DeliveryBatch()
        let destination = root + "/out/a.dcm"
        #expect(try delivery.deliver(source, to: destination, mode: .move, duplicates: .replaceIdentical, batch: batch) == .delivered(destination))
        // Another process (a second agent, an operator) takes the source away meanwhile.
        #expect(unlink(source) == 0)
        #expect(try delivery.commit(batch).isEmpty)
        #expect(bytes(destination) == original)
        #expect(journal.openIntents().isEmpty)
    }

    @Test("A withdrawn copy goes only while its source is still there")
    func withdrawOnlyWithSource() throws {
        let source = try source()
        try FileSystem.createDirectory(root + "/out")
        try FileSystem.copyVerified(source, to: root + "/out/a.dcm")
        #expect(unlink(source) == 0)
        #expect(try FileDelivery.withdraw(root + "/out/a.dcm", keeping: source).contains("kept"))
        #expect(FileManager.default.fileExists(atPath: root + "/out/a.dcm"))
        let again = try self.source("in/b.dcm")
        try FileSystem.copyVerified(again, to: root + "/out/b.dcm")
        _ = try FileDelivery.withdraw(root + "/out/b.dcm", keeping: again)
        #expect(!FileManager.default.fileExists(atPath: root + "/out/b.dcm"))
    }

    @Test("A move whose source changed since it was read keeps the source and withdraws the copy")
    func changedSourceIsNotMoved() throws {
        let source = try source()
        let read = try #require(FileSystem.stamp(source))
        // The writer appends after the read: the stamp the agent holds is stale.
        let handle = try #require(FileHandle(forWritingAtPath: source))
        handle.seekToEndOfFile()
        handle.write(Data(repeating: 0, count: 16))
        try handle.close()
        let grown = try #require(bytes(source))
        // A rewrite makes the move a copy even on one file system.
        #expect(throws: DeliveryError.self) {
            try self.delivery.deliver(source, to: self.root + "/out/a.dcm", mode: .move,
                                      rewrite: AtomicRewrite(changes: [.seriesDescription: "x"]), duplicates: .replaceIdentical, expected: read)
        }
        #expect(bytes(source) == grown)
        #expect(allFiles(under: root + "/out").isEmpty)
        #expect(journal.openIntents().isEmpty)
    }

    @Test("The journal is compacted to its open intents as it grows; recovery still finds them")
    func compaction() throws {
        let path = root + "/compacted.jsonl"
        let small = try Journal(path: path, compactionThreshold: 10)
        let open = try small.begin(.copy, source: root + "/in/x.dcm", destination: root + "/out/x.dcm")
        for index in 0..<50 {
            try small.finish(try small.begin(.copy, source: root + "/in/\(index).dcm", destination: root + "/out/\(index).dcm"))
        }
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count < 10)
        #expect(small.openIntents().map(\.id) == [open.id])
        #expect(try Journal(path: path).openIntents().map(\.id) == [open.id])
        #expect(try Journal(path: path).openIntents().map(\.source) == [root + "/in/x.dcm"])
        // A reopened journal never gives an open intent's id to a new one.
        #expect(try Journal(path: path).begin(.copy, source: "a", destination: "b").id > open.id)
    }
}
