import DICOM
import Foundation
import Testing

/// The storage SCP and SCU against DCMTK's own tools over loopback.
@Suite struct StorageNetworkTests {
    /// A real series with files enough to matter and one SOP class.
    static let series = "dcm_qa_fmap__S2_B0Map_GRE"

    static func seriesFiles() throws -> [String] {
        let folder = Fixtures.realData + "/" + series
        return try FileManager.default.contentsOfDirectory(atPath: folder).sorted().map { folder + "/" + $0 }
    }

    static func sopInstanceUID(_ path: String) throws -> String {
        try #require(DCMDump.topLevel(path)["(0008,0018)"]?.strings?.first)
    }

    static func pixels(_ path: String) throws -> [Float] {
        let header = try #require(try ImageHeader.read(from: path).first)
        return try DICOMFile.open(path, headerOnly: false).frame(0, header: header).values
    }

    /// One receiver runs per process: every receiving behaviour is checked in this one test.
    @Test func receiverStoresWholeInstancesUnderTheirUIDAndRefusesUnknownPeers() async throws {
        let root = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let folder = root + "/incoming"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let port = try freePort()
        let receiver = StorageReceiver(aeTitle: "MRSORT", port: port, allowedCallingAETitles: ["SCANNER"], folder: folder,
                                       staging: folder + "/.receiving-test", maximumAssociations: 2, minimumFreeBytes: 0, timeoutSeconds: 10)
        let events = EventLog()
        let thread = Thread {
            do {
                try receiver.run { isError, message in events.append((isError, message)) }
            } catch {
                events.append((true, "run failed: \(error)"))
            }
            events.finish()
        }
        thread.start()
        defer {
            StorageReceiver.stop()
            _ = events.waitForFinish(seconds: 10)
        }
        var listening = false
        for _ in 0..<50 where !listening {
            listening = (try? Tool.run("echoscu", ["-aet", "SCANNER", "-aec", "MRSORT", "127.0.0.1", String(port)])) != nil
            if !listening { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(listening, "the receiver answers C-ECHO: \(events.all)")

        // A third-party sender (DCMTK's storescu) with an allowed calling AE title.
        let files = try Self.seriesFiles()
        try Tool.run("storescu", ["-aet", "SCANNER", "-aec", "MRSORT", "127.0.0.1", String(port)] + files)
        let uids = try files.map(Self.sopInstanceUID)
        let arrived = try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }.sorted()
        #expect(arrived == uids.map { $0 + ".dcm" }.sorted())
        // Stored means whole: each file holds the dataset the sender had (same pixel data, same UID).
        for (file, uid) in zip(files, uids) {
            let received = try DCMDump.topLevel(folder + "/" + uid + ".dcm")
            #expect(received["(0008,0018)"]?.strings?.first == uid)
            #expect(try Self.pixels(folder + "/" + uid + ".dcm") == Self.pixels(file))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder + "/.receiving-test").isEmpty, "no staging leftovers")
        #expect(StorageReceiver.counters.instancesReceived == UInt64(files.count))

        // A calling AE title that is not allowed, and a called title that is not this node's, are refused.
        #expect(throws: Tool.Failure.self) { try Tool.run("storescu", ["-aet", "EVIL", "-aec", "MRSORT", "127.0.0.1", String(port), files[0]]) }
        let wrongCalled = StorageDestination(host: "127.0.0.1", port: port, calledAETitle: "OTHER", callingAETitle: "SCANNER", timeoutSeconds: 10)
            .send([files[0]])
        #expect(wrongCalled.outcomes == [.notSent])
        #expect(wrongCalled.error?.contains("OTHER@127.0.0.1") == true, "\(wrongCalled.error ?? "")")
        #expect(StorageReceiver.counters.associationsRefused == 2)
        #expect(events.all.contains { $0.0 && $0.1.contains("'EVIL' is not in allowed_calling_ae_titles") })

        // mrsort's own sender: an instance sent again is kept beside the first, never over it;
        // a file that cannot be sent is reported, the rest still go.
        let sender = StorageDestination(host: "127.0.0.1", port: port, calledAETitle: "MRSORT", callingAETitle: "SCANNER", timeoutSeconds: 10)
        let report = sender.send([files[0], root + "/missing.dcm"])
        #expect(report.outcomes == [.stored(status: 0), .unreadable], "\(report)")
        #expect(FileManager.default.fileExists(atPath: folder + "/" + uids[0] + "~1.dcm"))
        #expect(try datasetBytes(folder + "/" + uids[0] + "~1.dcm") == datasetBytes(folder + "/" + uids[0] + ".dcm"))
        #expect(StorageReceiver.counters.instancesReceived == UInt64(files.count + 1))

        // A hostile SOP Instance UID never becomes a path: the instance gets a generated name in the folder.
        let hostile = try Fixtures.copy(files[0], into: root, as: "hostile.dcm")
        try Tool.run("dcmodify", ["-nb", "-m", "(0008,0018)=../../escape", hostile])
        try Tool.run("storescu", ["-aet", "SCANNER", "-aec", "MRSORT", "127.0.0.1", String(port), hostile])
        let generated = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("instance-") }
        #expect(generated.count == 1 && generated[0].hasSuffix(".dcm"), "\(generated)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).sorted() == ["hostile.dcm", "incoming"])

        StorageReceiver.stop()
        #expect(events.waitForFinish(seconds: 10), "the receiver returns from run() after stop()")
        #expect(!events.all.contains { $0.1.hasPrefix("run failed") }, "\(events.all)")

        // A file system below minimum_free_megabytes: nothing is written, the sender is told.
        let full = StorageReceiver(aeTitle: "MRSORT", port: port, allowedCallingAETitles: [], folder: folder, staging: folder + "/.receiving-test",
                                   minimumFreeBytes: UInt64.max, timeoutSeconds: 10)
        let before = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        let fullEvents = EventLog()
        Thread {
            try? full.run { isError, message in fullEvents.append((isError, message)) }
            fullEvents.finish()
        }.start()
        var refusedForSpace = false
        for _ in 0..<50 where !refusedForSpace {
            try await Task.sleep(nanoseconds: 100_000_000)
            refusedForSpace = (try? Tool.run("storescu", ["-aet", "SCANNER", "-aec", "MRSORT", "127.0.0.1", String(port), files[1]])) == nil
                && fullEvents.all.contains { $0.1.contains("less than minimum_free_megabytes") }
        }
        #expect(refusedForSpace, "\(fullEvents.all)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder + "/.receiving-test").isEmpty)
        StorageReceiver.stop()
        #expect(fullEvents.waitForFinish(seconds: 10))
    }

    @Test func senderDeliversEveryInstanceToAStorageSCP() throws {
        let root = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let port = try freePort()
        let pacs = try BackgroundProcess("storescp", ["--aetitle", "PACS", "-od", root, String(port)], log: root + "/../storescp-\(port).log")
        defer { pacs.stop() }
        let files = try Self.seriesFiles()
        let sender = StorageDestination(host: "127.0.0.1", port: port, calledAETitle: "PACS", callingAETitle: "MRSORT", timeoutSeconds: 10)
        var report = sender.send(files)
        // storescp may take a moment to open its port.
        for _ in 0..<30 where report.error != nil {
            Thread.sleep(forTimeInterval: 0.2)
            report = sender.send(files)
        }
        #expect(report.error == nil, "\(report.error ?? "")")
        #expect(report.outcomes == Array(repeating: .stored(status: 0), count: files.count))
        let stored = try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasPrefix("MR.") }.sorted()
        let expected = try files.map { "MR." + (try Self.sopInstanceUID($0)) }.sorted()
        #expect(stored == expected)
    }

    @Test func senderReportsADestinationThatIsDown() throws {
        let port = try freePort()
        let files = try Array(Self.seriesFiles().prefix(2))
        let report = StorageDestination(host: "127.0.0.1", port: port, calledAETitle: "PACS", callingAETitle: "MRSORT", timeoutSeconds: 5).send(files)
        #expect(report.outcomes == [.notSent, .notSent])
        #expect(report.error?.contains("PACS@127.0.0.1:\(port)") == true, "\(report.error ?? "")")
    }
}

/// What a receiver reported, from its threads.
private final class EventLog: @unchecked Sendable {
    private let condition = NSCondition()
    private var events: [(Bool, String)] = []
    private var finished = false

    func append(_ event: (Bool, String)) {
        condition.lock()
        events.append(event)
        condition.unlock()
    }

    func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    func waitForFinish(seconds: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(seconds)
        while !finished, condition.wait(until: deadline) {}
        return finished
    }

    var all: [(Bool, String)] {
        condition.lock()
        defer { condition.unlock() }
        return events
    }
}
