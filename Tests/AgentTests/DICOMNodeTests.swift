import DICOM
import Foundation
import Testing
@testable import Agent

/// The whole DICOM node over loopback: DCMTK's storescu plays the scanner, `mrsort receive` (the
/// process the receiver unit runs) listens, the agent sorts and forwards, and DCMTK's storescp
/// plays the PACS, which is down when the first series are ready.
@Suite("DICOM node: receive by C-STORE, sort, forward", .serialized)
struct DICOMNodeTests {
    static let series = ["dcm_qa_fmap__S2_B0Map_GRE", "dbdicom_rider__S14_sag_3d_gre_+c"]

    @Test("Instances stored to mrsort are sorted and reach a PACS that was down, each once and byte for byte; a refused AE title stores nothing")
    func receiveSortForward() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["in", "out", "quarantine", "pacs"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        let scannerPort = try freePort(), pacsPort = try freePort()
        let text = """
        state_directory: \(root)/state
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: 1
            action: move
            output: \(root)/out
            quarantine: \(root)/quarantine
            forward: [pacs]
        receivers:
          - name: scanner
            ae_title: MRSORT
            port: \(scannerPort)
            folder: \(root)/in
            allowed_calling_ae_titles: [SCANNER]
            minimum_free_megabytes: 0
        destinations:
          - name: pacs
            host: 127.0.0.1
            port: \(pacsPort)
            called_ae_title: PACS
            retries: 30
            retry_seconds: 1
            timeout_seconds: 5
        """
        try text.write(toFile: root + "/mrsort.yaml", atomically: true, encoding: .utf8)
        let receiver = try BackgroundProcess(Paths.mrsort, ["receive", "scanner", "--config", root + "/mrsort.yaml"], log: root + "/receiver.log")
        defer { receiver.stop() }
        let (agent, running) = try AgentFeatureTests.agent(root, text)
        defer {
            agent.stop()
            running.cancel()
        }
        let echo = { try run("/usr/bin/echoscu", ["-aet", "SCANNER", "-aec", "MRSORT", "127.0.0.1", String(scannerPort)]).status == 0 }
        #expect(try await eventually(60, echo), "mrsort receive answers C-ECHO: \((try? String(contentsOfFile: root + "/receiver.log", encoding: .utf8)) ?? "")")

        let files = try Self.series.flatMap(Paths.realSeries)
        let uids = Set(try files.map { try #require(try ImageHeader.read(from: $0).first).sopInstanceUID })
        let sent = try run("/usr/bin/storescu", ["-aet", "SCANNER", "-aec", "MRSORT", "127.0.0.1", String(scannerPort)] + files)
        #expect(sent.status == 0, "\(sent.error)")
        let refused = try run("/usr/bin/storescu", ["-aet", "EVIL", "-aec", "MRSORT", "127.0.0.1", String(scannerPort), files[0]])
        #expect(refused.status != 0)

        // The PACS is down: the series are sorted, and wait in the queue with the reason.
        let audit = root + "/state/audit.jsonl"
        let sorted = { allFiles(under: root + "/out").filter { $0.hasSuffix(".dcm") } }
        // Generous: the whole suite runs at once on few cores.
        #expect(await eventually(240) { sorted().count == files.count })
        #expect(await eventually(120) { JSONLinesLog<AuditRecord>.read(audit).contains { $0.action == "forward failed" } })
        let waiting = try run(Paths.mrsort, ["status", "--config", root + "/mrsort.yaml"]).output
        #expect(waiting.contains("PACS@127.0.0.1:\(pacsPort)"), "\(waiting)")
        #expect(allFiles(under: root + "/in").isEmpty, "nothing left in the drop folder, no staging leftovers")

        // The PACS comes up: every instance arrives, once.
        let pacs = try BackgroundProcess("storescp", ["--aetitle", "PACS", "+uf", "-B", "-od", root + "/pacs", String(pacsPort)], log: root + "/pacs.log")
        defer { pacs.stop() }
        let arrived = { allFiles(under: root + "/pacs") }
        #expect(await eventually(180) { arrived().count >= files.count })
        try await Task.sleep(nanoseconds: 2_000_000_000)
        #expect(arrived().count == files.count, "each instance once")
        var forwarded: [String: String] = [:]
        for file in arrived() {
            forwarded[try #require(try ImageHeader.read(from: file).first).sopInstanceUID] = file
        }
        #expect(Set(forwarded.keys) == uids)
        // What the PACS holds is what the agent sorted, byte for byte (the default layout names files by SOP Instance UID).
        for file in sorted() {
            let uid = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
            let copy = try #require(forwarded[uid], "\(uid) reached the PACS")
            #expect(try datasetBytes(copy) == datasetBytes(file))
        }
        let lines = JSONLinesLog<AuditRecord>.read(audit)
        #expect(lines.filter { $0.action == "forward" }.count == files.count)
        #expect(Set(lines.filter { $0.action == "forward" }.map(\.file)) == Set(sorted()))
        #expect(await eventually(60) { (try? FileManager.default.contentsOfDirectory(atPath: root + "/state/forward/pacs"))?.isEmpty == true })
        #expect(!FileManager.default.fileExists(atPath: root + "/state/dead-letter"))
        #expect(await agent.currentCounters().forwarded == files.count)

        // The status file is rewritten every 2 s at most.
        var status = ""
        #expect(await eventually(30) {
            status = (try? run(Paths.mrsort, ["status", "--config", root + "/mrsort.yaml"]).output) ?? ""
            return status.contains("instances forwarded \(files.count)")
        }, "\(status)")
        let receiverStatus = try JSONDecoder.iso8601.decode(ReceiverStatus.self, from: Data(contentsOf: URL(fileURLWithPath: root + "/state/receivers/scanner.json")))
        #expect(receiverStatus.counters.instancesReceived == UInt64(files.count))
        #expect(receiverStatus.counters.associationsRefused == 1)
    }

    @Test("A destination that never answers: after the last retry the series is set aside in the dead-letter folder, whole, with its job")
    func deadLetter() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["in", "out", "quarantine"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        let text = """
        state_directory: \(root)/state
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: 1
            action: copy
            output: \(root)/out
            quarantine: \(root)/quarantine
            forward: [{destination: pacs, classes: [t1_3d_post, t1_3d_pre]}]
        destinations:
          - {name: pacs, host: 127.0.0.1, port: \(try freePort()), called_ae_title: PACS, retries: 1, retry_seconds: 1, timeout_seconds: 2}
        """
        let (agent, running) = try AgentFeatureTests.agent(root, text)
        defer {
            agent.stop()
            running.cancel()
        }
        // One series the route forwards (a 3D T1) and one it does not.
        for name in Self.series {
            try FileManager.default.createDirectory(atPath: root + "/in/" + name, withIntermediateDirectories: true)
            for file in try Paths.realSeries(name) {
                try FileManager.default.copyItem(atPath: file, toPath: root + "/in/" + name + "/" + (file as NSString).lastPathComponent)
            }
        }
        let dead = root + "/state/dead-letter/pacs"
        #expect(await eventually(240) { ((try? FileManager.default.contentsOfDirectory(atPath: dead)) ?? []).count == 1 })
        let job = try #require(try FileManager.default.contentsOfDirectory(atPath: dead).first)
        let kept = try FileManager.default.contentsOfDirectory(atPath: dead + "/" + job).sorted()
        let series = try Paths.realSeries(Self.series[1])
        #expect(kept.count == series.count + 1 && kept.contains("job.json"))
        let record = try JSONDecoder.iso8601.decode(ForwardJob.self, from: Data(contentsOf: URL(fileURLWithPath: dead + "/" + job + "/job.json")))
        #expect(record.attempts == 2 && record.lastError?.contains("PACS@127.0.0.1") == true)
        #expect(record.sequence == .t13DPost)
        // Set aside, never removed: the sorted copies are where they were.
        #expect(record.files.allSatisfy { FileManager.default.fileExists(atPath: $0) })
        let lines = JSONLinesLog<AuditRecord>.read(root + "/state/audit.jsonl")
        #expect(lines.filter { $0.action == "forward dead-letter" }.count == 1)
        #expect(lines.filter { $0.action == "forward failed" }.count == 2, "one line per failed send, not one per file")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/state/forward/pacs").isEmpty)
    }
}
