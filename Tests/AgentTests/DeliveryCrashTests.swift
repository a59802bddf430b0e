import DICOM
import Foundation
import Synchronization
import Testing
@testable import Agent

/// A kill -9 at every step of every kind of delivery, deterministically: the files as they are
/// after each step are kept (hard links, so that inodes, sizes and times are what a crash leaves;
/// the journal, appended in place, by its bytes), then each such state is put back and recovered
/// as the next start would, and what is left must be every file whole in exactly one place (a
/// copy: its source, and at most one complete destination), no temporary, nothing open.
@Suite("A crash at every step of delivery")
struct DeliveryCrashTests {
    /// The states after each step of one delivery.
    final class Recorder: Sendable {
        let root: String
        let store: String
        private let states = Mutex<[(step: String, folder: String, journal: Data)]>([])

        init(root: String, store: String) {
            self.root = root
            self.store = store
        }

        var recorded: [(step: String, folder: String, journal: Data)] { states.withLock { $0 } }

        func record(_ step: String) {
            states.withLock { states in
                let folder = store + "/\(states.count)"
                for path in allFiles(under: root) where path != root + "/journal.jsonl" {
                    let target = folder + String(path.dropFirst(root.count))
                    try? FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                    _ = link(path, target)
                }
                states.append((step, folder, FileManager.default.contents(atPath: root + "/journal.jsonl") ?? Data()))
            }
        }
    }

    /// Puts a recorded state back in `root`: the same inodes at the same names, the journal's bytes.
    static func restore(_ state: (step: String, folder: String, journal: Data), into root: String) throws {
        try FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for path in allFiles(under: state.folder) {
            let target = root + String(path.dropFirst(state.folder.count))
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            #expect(link(path, target) == 0)
        }
        #expect(FileManager.default.createFile(atPath: root + "/journal.jsonl", contents: state.journal))
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var mode: FolderRule.Action.Delivery
        var rewrite: Bool
        var batch: Bool
        var testDescription: String { (rewrite ? "rewrite+" : "") + mode.rawValue + (batch ? " in a batch" : " alone") }
    }

    static let cases: [Case] = [false, true].flatMap { rewrite in
        [FolderRule.Action.Delivery.move, .copy].flatMap { mode in [false, true].map { Case(mode: mode, rewrite: rewrite, batch: $0) } }
    }

    @Test("Recovery after a crash at any step leaves the file whole in one place", arguments: cases)
    func crashAtEveryStep(_ kind: Case) throws {
        let base = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = base + "/root"
        let source = root + "/in/a.dcm", destination = root + "/out/x/a.dcm"
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try #require(try Paths.realSeries("dcm_qa_decubitus__S2_t1_fl2d_sag").first), toPath: source)
        let original = try #require(FileManager.default.contents(atPath: source))
        let description = "t1_pre sagittal (crash test)"

        let recorder = Recorder(root: root, store: base + "/states")
        var delivery = FileDelivery(journal: try Journal(path: root + "/journal.jsonl"))
        delivery.afterStep = { recorder.record($0) }
        let batch = kind.batch ? DeliveryBatch() : nil
        let outcome = try delivery.deliver(source, to: destination, mode: kind.mode,
                                           rewrite: kind.rewrite ? AtomicRewrite(changes: [.seriesDescription: description]) : nil,
                                           duplicates: .replaceIdentical, batch: batch, expected: FileSystem.stamp(source))
        #expect(outcome == .delivered(destination))
        if let batch {
            try delivery.commit(batch)
            try delivery.settle(batch)
        }
        recorder.record("end")
        let states = recorder.recorded
        #expect(states.count >= 3, "\(kind): steps \(states.map(\.step))")

        /// The destination holds what the action writes.
        func complete(_ path: String) -> Bool {
            guard let bytes = FileManager.default.contents(atPath: path) else { return false }
            guard kind.rewrite else { return bytes == original }
            return (try? ImageHeader.read(from: path).first?.seriesDescription) == description
        }
        for (index, state) in states.enumerated() {
            try Self.restore(state, into: root)
            _ = try Journal(path: root + "/journal.jsonl").recover()
            let place = "\(kind), crash after step \(index) (\(state.step))"
            #expect(try Journal(path: root + "/journal.jsonl").openIntents().isEmpty, "\(place): intents left open")
            #expect(allFiles(under: root).allSatisfy { !$0.contains(".mrsort-tmp") }, "\(place): a temporary is left")
            let atSource = FileManager.default.contents(atPath: source)
            let atDestination = FileManager.default.fileExists(atPath: destination)
            if atDestination { #expect(complete(destination), "\(place): an incomplete destination") }
            switch kind.mode {
            case .move:
                #expect(atSource == nil ? atDestination : (atSource == original && !atDestination), "\(place): not in exactly one place")
            case .copy:
                #expect(atSource == original, "\(place): the source of a copy changed")
            }
            let others = allFiles(under: root).filter { ![source, destination, root + "/journal.jsonl"].contains($0) }
            #expect(others.isEmpty, "\(place): stray files \(others)")
            if state.step == "end" {
                #expect(complete(destination), "\(place): not delivered")
            }
        }
    }
}
