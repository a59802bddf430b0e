import Foundation
import Testing
@testable import Agent

@Suite("Forwarding queue on disk")
struct ForwardQueueTests {
    static func job(_ id: String, files: [String], destination: String = "pacs") -> ForwardJob {
        ForwardJob(id: id, destination: destination, rule: "mri", study: "1.2", series: "1.2.3", sequence: .t2, files: files,
                   attempts: 0, due: Date(timeIntervalSince1970: 1_000), created: Date(timeIntervalSince1970: 1_000))
    }

    @Test("Jobs survive a restart, leave only when done, and a dead letter keeps the files and the reason")
    func lifecycle() throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let state = StateDirectory(root + "/state")
        let file = root + "/a.dcm", other = root + "/b.dcm"
        try Data("one".utf8).write(to: URL(fileURLWithPath: file))
        try Data("two".utf8).write(to: URL(fileURLWithPath: other))

        var queue = try ForwardQueue(state: state)
        try queue.enqueue(Self.job("j1", files: [file, other]))
        try queue.enqueue(Self.job("j2", files: [other], destination: "lesions"))
        // A new agent (a restart) finds both, with what they hold.
        var restarted = try ForwardQueue(state: state)
        #expect(restarted.load().isEmpty)
        #expect(Set(restarted.all.map(\.id)) == ["j1", "j2"])
        #expect(restarted.next(for: "pacs", at: Date())?.files == [file, other])
        #expect(restarted.next(for: "pacs", at: Date(timeIntervalSince1970: 999)) == nil, "not due yet")

        // A partial send: the rest is written back and read back so.
        var retry = try #require(restarted.next(for: "pacs", at: Date()))
        retry.files = [other]
        retry.attempts = 1
        retry.lastError = "refused with status 0xA700"
        try restarted.update(retry)
        var again = try ForwardQueue(state: state)
        _ = again.load()
        #expect(again.jobs["pacs"]?.first == retry)

        // Dead letter: the unacknowledged file linked beside job.json; the queue no longer holds it;
        // the sorted file is where it was.
        let folder = try again.deadLetter(retry)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == ["b.dcm", "job.json"])
        let inode = { (path: String) in try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int }
        #expect(try inode(folder + "/b.dcm") == inode(other), "a hard link")
        let kept = try JSONDecoder.iso8601.decode(ForwardJob.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/job.json")))
        #expect(kept.lastError == "refused with status 0xA700")
        #expect(!again.contains(retry) && again.deadLetterCount("pacs") == 1)
        #expect(FileManager.default.fileExists(atPath: other))

        // Done: gone from memory and disk.
        let lesions = try #require(again.next(for: "lesions", at: Date()))
        try again.complete(lesions)
        var last = try ForwardQueue(state: state)
        #expect(last.load().isEmpty && last.all.isEmpty)
    }

    @Test("A job file that does not decode is reported and left in place")
    func unreadableJob() throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let state = StateDirectory(root + "/state")
        try FileManager.default.createDirectory(atPath: state.forwardQueue + "/pacs", withIntermediateDirectories: true)
        try Data("{ torn".utf8).write(to: URL(fileURLWithPath: state.forwardQueue + "/pacs/x.json"))
        var queue = try ForwardQueue(state: state)
        #expect(queue.load() == [state.forwardQueue + "/pacs/x.json"])
        #expect(queue.all.isEmpty)
        #expect(FileManager.default.fileExists(atPath: state.forwardQueue + "/pacs/x.json"))
    }
}
