import Classification
import DICOM
import Foundation
import Logging
import Testing
@testable import Agent

@Suite("Review, study triggers, relabel and status", .serialized)
struct AgentFeatureTests {
    static func folders(_ root: String) throws {
        for folder in ["in", "out", "quarantine", "review"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
    }

    static func agent(_ root: String, _ text: String) throws -> (WatchAgent, Task<Void, any Error>) {
        let configuration = try AgentConfiguration.parse(text, file: "test.yaml")
        let agent = try WatchAgent(configuration: configuration, configurationPath: nil,
                                   classifier: try SeriesClassifier(modelDirectory: Paths.models), logger: Logger(label: "test"))
        return (agent, Task { try await agent.run() })
    }

    /// An executable shell script at `root/pipeline.sh`, standing in for a pipeline.
    static func pipeline(_ root: String, _ body: String) throws -> String {
        let script = root + "/pipeline.sh"
        try ("#!/bin/sh\n" + body + "\n").write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        return script
    }

    /// A configuration of one `move` rule over `root/in` with one trigger (its YAML lines, indented
    /// as list items of `triggers:`), a one-second quiet period and `extra` rule lines.
    static func triggerRule(_ root: String, extra: String = "", trigger: String) -> String {
        """
        state_directory: \(root)/state
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: 1
            action: move
            output: \(root)/out
            quarantine: \(root)/quarantine\(extra.isEmpty ? "" : "\n" + extra)
            triggers:
        \(trigger)
        """
    }

    /// A DWI trigger running `command`, started once more after a failure, a second later.
    static func retryingTrigger(command: String) -> String {
        """
              - name: diffusion
                requires: [dwi]
                quiet_seconds: 1
                command: [\(command)]
                retries: 1
                retry_seconds: 1
        """
    }

    static func copy(_ series: String, into folder: String) throws -> [String] {
        try Paths.realSeries(series).map { file in
            let target = folder + "/" + (file as NSString).lastPathComponent
            try FileManager.default.copyItem(atPath: file, toPath: target)
            return target
        }
    }

    @Test("A series below the confidence threshold goes to review, unrewritten, with its classification beside it")
    func review() throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let configuration = try AgentConfiguration.parse("""
        state_directory: \(root)/state
        rules:
          - name: mri
            watch: \(root)/in
            action: rewrite+move
            output: \(root)/out
            layout: "{SeriesNumber}_{sequence}/{SOPInstanceUID}.dcm"
            minimum_confidence: 0.6
            review: \(root)/review
            quarantine: \(root)/quarantine
        """, file: "test.yaml")
        let rule = try #require(configuration.rules.first)
        try FileSystem.createDirectory(root + "/state")
        let journal = try Journal(path: root + "/state/journal.jsonl")
        let audit = try JSONLinesLog<AuditRecord>(path: root + "/state/audit.jsonl")
        let handler = SeriesHandler(rule: rule, delivery: FileDelivery(journal: journal), audit: audit)
        let paths = try Self.copy("dcm_qa_decubitus__S2_t1_fl2d_sag", into: root + "/in")
        let files = try paths.map { TrackedFile(path: $0, stamp: try #require(FileSystem.stamp($0)), headers: try ImageHeader.read(from: $0)) }
        let forest = try SeriesClassifier(modelDirectory: Paths.models)
        // The real classification, made unsure: a vote split 40/60 as two models might give.
        let result = try #require(handler.handle(files, decided: nil) { headers in
            guard var classification = forest.classify(headers) else { return nil }
            classification.confidence = 0.4
            return classification
        })
        #expect(result.decision.review)
        #expect(result.delivered == files.count)
        let reviewed = allFiles(under: root + "/review")
        #expect(reviewed.filter { $0.hasSuffix(".dcm") }.count == files.count)
        #expect(allFiles(under: root + "/out").isEmpty)
        #expect(allFiles(under: root + "/in").isEmpty)
        let note = try #require(reviewed.first { $0.hasSuffix("/mrsort-classification.json") })
        let decision = try JSONDecoder.iso8601.decode(SeriesDecision.self, from: try Data(contentsOf: URL(fileURLWithPath: note)))
        #expect(decision.classification.confidence == 0.4)
        for path in reviewed where path.hasSuffix(".dcm") {
            #expect(try ImageHeader.read(from: path).first?.seriesDescription == files[0].headers[0].seriesDescription)
        }
        #expect(JSONLinesLog<AuditRecord>.read(root + "/state/audit.jsonl").allSatisfy { $0.action == "review" })
    }

    @Test("A study trigger fires once when the study holds the classes and is quiet, also across a restart")
    func trigger() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let script = root + "/pipeline.sh"
        try "#!/bin/sh\necho \"$MRSORT_STUDY_UID|$MRSORT_TRIGGER|$1|$2|$3\" >> \(root)/calls.txt\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let text = """
        state_directory: \(root)/state
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: 1
            action: move
            output: \(root)/out
            layout: "{StudyInstanceUID}/{SeriesNumber}_{sequence}/{SOPInstanceUID}.dcm"
            quarantine: \(root)/quarantine
            triggers:
              - name: diffusion
                requires: [dwi]
                quiet_seconds: 1
                command: [\(script), --study]
                inbox: \(root)/inbox
        """
        var (agent, running) = try Self.agent(root, text)
        let study = try #require(try ImageHeader.read(from: try Paths.realSeries("dcm_qa_philips__S601_dti_ax")[0]).first).studyInstanceUID
        _ = try Self.copy("dcm_qa_philips__S601_dti_ax", into: root + "/in")
        #expect(await eventually(120) { FileManager.default.fileExists(atPath: root + "/calls.txt") })
        agent.stop()
        try await running.value

        (agent, running) = try Self.agent(root, text)
        try await Task.sleep(nanoseconds: 3_000_000_000)
        agent.stop()
        try await running.value

        let calls = try String(contentsOfFile: root + "/calls.txt", encoding: .utf8).split(separator: "\n")
        #expect(calls.count == 1)
        let manifestPath = root + "/state/manifests/diffusion-\(study).json"
        // The study's folder in the layout, also for a study of one series.
        #expect(calls.first.map(String.init) == "\(study)|diffusion|--study|\(root)/out/\(study)|\(manifestPath)")
        let manifest = try JSONDecoder.iso8601.decode(StudyManifest.self, from: try Data(contentsOf: URL(fileURLWithPath: root + "/inbox/\(study).json")))
        #expect(manifest.study == study)
        #expect(manifest.series.map(\.sequence) == [.dwi])
        #expect(manifest.series.first?.folders.first?.hasPrefix(root + "/out/\(study)/") == true)
        // One line when fired, one when the command started, one with its exit status when it ended.
        let records = JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl")
        #expect(records.map(\.exitStatus) == [nil, nil, 0])
        #expect(records.map { $0.pid != nil } == [false, true, true])
        #expect(records.last?.log == root + "/state/manifests/diffusion-\(study).log")
        // status counts them per trigger.
        try text.write(toFile: root + "/mrsort.yaml", atomically: true, encoding: .utf8)
        let status = try run(Paths.mrsort, ["status", "--config", root + "/mrsort.yaml"])
        let row = status.output.split(separator: "\n").first { $0.hasPrefix("diffusion") }.map { $0.split(separator: " ").map(String.init) }
        // waiting, due, running, retrying: the agent is not running; fired 1, succeeded 1.
        #expect(row.map { Array($0.prefix(10)) } == ["diffusion", "0", "0", "0", "0", "1", "1", "0", "0", "0"], "\(status.output)")
        #expect(row?.last == "0", "the last outcome: exit 0")
    }

    @Test("A file still being written holds back its study's trigger; the trigger then fires with the whole series")
    func triggerWaitsForFilesInProgress() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let script = try Self.pipeline(root, "find \"$1\" -type f -name '*.dcm' | wc -l > \(root)/count.tmp\nmv \(root)/count.tmp \(root)/count.txt")
        let (agent, running) = try Self.agent(root, Self.triggerRule(root, extra: "    incomplete_seconds: 120", trigger: """
              - name: diffusion
                requires: [dwi]
                quiet_seconds: 1
                command: [\(script)]
        """))
        let files = try Paths.realSeries("dcm_qa_philips__S601_dti_ax")
        for file in files.dropLast() { try FileManager.default.copyItem(atPath: file, toPath: root + "/in/" + (file as NSString).lastPathComponent) }
        // The last file arrives slowly: 60% of it now, the rest later.
        let last = try #require(files.last)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: last))
        let target = root + "/in/" + (last as NSString).lastPathComponent
        #expect(FileManager.default.createFile(atPath: target, contents: bytes.prefix(bytes.count * 6 / 10)))
        try await Task.sleep(nanoseconds: 5_000_000_000)
        #expect(!FileManager.default.fileExists(atPath: root + "/count.txt"), "fired while a file of the study was in progress")
        let handle = try #require(FileHandle(forWritingAtPath: target))
        handle.seekToEndOfFile()
        handle.write(bytes.suffix(from: bytes.count * 6 / 10))
        try handle.close()
        #expect(await eventually(120) { FileManager.default.fileExists(atPath: root + "/count.txt") })
        agent.stop()
        try await running.value
        let count = try String(contentsOfFile: root + "/count.txt", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(count == "\(files.count)")
    }

    @Test("A command still running when the agent stops is recorded as interrupted at the next start, once")
    func interruptedTrigger() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let script = try Self.pipeline(root, "exec sleep 60")
        let text = Self.triggerRule(root, trigger: """
              - name: diffusion
                requires: [dwi]
                quiet_seconds: 1
                command: [\(script)]
        """)
        var (agent, running) = try Self.agent(root, text)
        _ = try Self.copy("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2", into: root + "/in")
        #expect(await eventually(120) { JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").contains { $0.pid != nil } })
        agent.stop()
        try await running.value
        let pid = try #require(JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").compactMap(\.pid).first)
        defer { kill(-pid, SIGKILL) }
        for _ in 0..<2 {
            (agent, running) = try Self.agent(root, text)
            try await Task.sleep(nanoseconds: 1_500_000_000)
            agent.stop()
            try await running.value
        }
        let records = JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl")
        #expect(records.count == 3, "fired, started, interrupted once: \(records)")
        #expect(records.last?.error?.hasPrefix("interrupted: the agent stopped while the command ran (pid \(pid))") == true)
        #expect(records.last?.exitStatus == nil)
    }

    @Test("A series that arrives after its study's trigger fired is recorded as left out of the manifest")
    func lateSeries() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let (agent, running) = try Self.agent(root, Self.triggerRule(root, trigger: """
              - name: diffusion
                requires: [dwi]
                quiet_seconds: 1
                inbox: \(root)/inbox
        """))
        // The DWI and a T1 of one study; the T1 comes after the trigger fired on the DWI.
        _ = try Self.copy("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2", into: root + "/in")
        #expect(await eventually(120) { !allFiles(under: root + "/inbox").isEmpty })
        let t1 = try Self.copy("dcm_qa_decubitus__S3_t1_fl2d_sag", into: root + "/in")
        let series = try #require(try ImageHeader.read(from: t1[0]).first).seriesInstanceUID
        #expect(await eventually(120) { JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").count == 2 })
        agent.stop()
        try await running.value
        let late = try #require(JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").last)
        #expect(late.trigger == "diffusion")
        #expect(late.error?.hasPrefix("late series \(series) (") == true, "\(late)")
        #expect(late.error?.hasSuffix("arrived after the trigger fired; it is not in its manifest") == true)
    }

    @Test("A failing command starts again as often as retries allow, with a new attempt in its manifest; each start is audited")
    func failedTriggerRetries() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let script = try Self.pipeline(root, "grep -h '\"attempt\"' \"$2\" >> \(root)/attempts.txt\nexit 3")
        let (agent, running) = try Self.agent(root, Self.triggerRule(root, trigger: """
              - name: diffusion
                requires: [dwi]
                quiet_seconds: 1
                command: [\(script)]
                retries: 2
                retry_seconds: 1
        """))
        _ = try Self.copy("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2", into: root + "/in")
        #expect(await eventually(120) { JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").filter { $0.exitStatus != nil }.count == 3 })
        // No fourth start: the retries are spent.
        try await Task.sleep(nanoseconds: 2_500_000_000)
        agent.stop()
        try await running.value
        let records = JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl")
        let ends = records.filter { $0.exitStatus != nil }
        #expect(ends.map(\.exitStatus) == [3, 3, 3])
        #expect(ends.map(\.attempt) == [1, 2, 3])
        #expect(ends.map { $0.retryAt != nil } == [true, true, false])
        let attempts = try String(contentsOfFile: root + "/attempts.txt", encoding: .utf8)
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(attempts == ["\"attempt\" : 1,", "\"attempt\" : 2,", "\"attempt\" : 3,"])
        let audited = JSONLinesLog<AuditRecord>.read(root + "/state/audit.jsonl").filter { $0.action.hasPrefix("trigger") }
        #expect(audited.map(\.action) == ["trigger", "trigger ended", "trigger", "trigger ended", "trigger", "trigger ended"], "\(audited)")
        #expect(audited.last?.reason?.hasPrefix("trigger diffusion: exit 3, log \(root)/state/manifests/diffusion-") == true)
    }

    @Test("A command interrupted by the agent's stop starts again at the next start when retries allow")
    func interruptedTriggerRetries() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        // The first run hangs; the second records that it ran.
        let script = try Self.pipeline(root, "if [ -e \(root)/first ]; then touch \(root)/second; else touch \(root)/first; exec sleep 60; fi")
        let text = Self.triggerRule(root, trigger: Self.retryingTrigger(command: script))
        var (agent, running) = try Self.agent(root, text)
        _ = try Self.copy("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2", into: root + "/in")
        #expect(await eventually(120) { FileManager.default.fileExists(atPath: root + "/first") })
        agent.stop()
        try await running.value
        // Still running, as a command whose agent was killed would be (this test's process keeps
        // the first agent's waiting thread, which would record its end).
        let pid = try #require(JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").compactMap(\.pid).first)
        defer { kill(-pid, SIGKILL) }
        (agent, running) = try Self.agent(root, text)
        #expect(await eventually(60) { FileManager.default.fileExists(atPath: root + "/second") })
        try await Task.sleep(nanoseconds: 500_000_000)
        agent.stop()
        try await running.value
        let events = JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").map(\.event)
        #expect(events == [.fired, .started, .interrupted, .fired, .started, .ended(exitStatus: 0)], "\(events)")
    }

    @Test("A firing whose command's start was never recorded (kill -9 in between) is interrupted at the next start and retried")
    func unstartedTriggerIsInterrupted() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let script = try Self.pipeline(root, "echo ran >> \(root)/runs.txt")
        let text = Self.triggerRule(root, trigger: Self.retryingTrigger(command: script))
        var (agent, running) = try Self.agent(root, text)
        _ = try Self.copy("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2", into: root + "/in")
        let log = root + "/state/triggers.jsonl"
        #expect(await eventually(120) { JSONLinesLog<TriggerRecord>.read(log).count == 3 })
        agent.stop()
        try await running.value
        // What a kill -9 right after the fired line leaves: that line alone.
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        try (lines[0] + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        (agent, running) = try Self.agent(root, text)
        #expect(await eventually(60) { JSONLinesLog<TriggerRecord>.read(log).count == 5 })
        agent.stop()
        try await running.value
        let records = JSONLinesLog<TriggerRecord>.read(log)
        #expect(records.map(\.event) == [.fired, .interrupted, .fired, .started, .ended(exitStatus: 0)], "\(records)")
        #expect(records[1].error?.contains("as the command was being started") == true)
        #expect(records[2].attempt == 2)
        #expect(try String(contentsOfFile: root + "/runs.txt", encoding: .utf8) == "ran\nran\n")
    }

    @Test("With refire: on-new-series a late series makes the trigger fire again with a second manifest revision")
    func refireOnNewSeries() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let (agent, running) = try Self.agent(root, Self.triggerRule(root, trigger: """
              - name: diffusion
                requires: [dwi]
                quiet_seconds: 1
                inbox: \(root)/inbox
                refire: on-new-series
        """))
        let study = try #require(try ImageHeader.read(from: try Paths.realSeries("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2")[0]).first).studyInstanceUID
        let manifest = root + "/inbox/\(study).json"
        func revision() -> StudyManifest? {
            (try? Data(contentsOf: URL(fileURLWithPath: manifest))).flatMap { try? JSONDecoder.iso8601.decode(StudyManifest.self, from: $0) }
        }
        _ = try Self.copy("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2", into: root + "/in")
        #expect(await eventually(120) { revision()?.revision == 1 })
        _ = try Self.copy("dcm_qa_decubitus__S3_t1_fl2d_sag", into: root + "/in")
        #expect(await eventually(120) { revision()?.revision == 2 })
        agent.stop()
        try await running.value
        #expect(revision()?.series.count == 2)
        let late = try #require(JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").first { $0.event == .lateSeries })
        #expect(late.refire == true)
        #expect(late.error?.hasSuffix("the trigger fires again with it once the study is quiet") == true)
    }

    @Test("A command's log keeps its first maximum_log_megabytes and says the rest was dropped")
    func triggerLogIsCapped() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        // 3 MiB of output against a 1 MiB cap.
        let script = try Self.pipeline(root, "head -c 3145728 /dev/zero | tr '\\0' x")
        let (agent, running) = try Self.agent(root, Self.triggerRule(root, trigger: """
              - name: diffusion
                requires: [dwi]
                quiet_seconds: 1
                command: [\(script)]
                maximum_log_megabytes: 1
        """))
        _ = try Self.copy("dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2", into: root + "/in")
        #expect(await eventually(120) { JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").contains { $0.exitStatus != nil } })
        agent.stop()
        try await running.value
        let log = try #require(JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").compactMap(\.log).first)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.hasPrefix(String(repeating: "x", count: 1 << 20) + "\n[mrsort: output past 1 MiB dropped"))
        #expect(text.utf8.count < (1 << 20) + 200, "\(text.utf8.count) bytes")
    }

    @Test("mrsort status lists a series still waiting for quiet with its whole UID")
    func statusShowsPendingSeries() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let text = """
        state_directory: \(root)/state
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: 600
            action: move
            output: \(root)/out
            quarantine: \(root)/quarantine
        """
        try text.write(toFile: root + "/mrsort.yaml", atomically: true, encoding: .utf8)
        let (agent, running) = try Self.agent(root, text)
        let files = try Self.copy("dcm_qa_decubitus__S3_t1_fl2d_sag", into: root + "/in")
        let series = try #require(try ImageHeader.read(from: files[0]).first).seriesInstanceUID
        var output = ""
        let listed = try await eventually(30) {
            output = try run(Paths.mrsort, ["status", "--config", root + "/mrsort.yaml"]).output
            return output.contains("pending series: 1")
        }
        agent.stop()
        try await running.value
        #expect(listed, "\(output)")
        let row = output.split(separator: "\n").first { $0.contains(series) }.map { $0.split(separator: " ").map(String.init) }
        #expect(row?.contains(series) == true, "the whole UID \(series) in \(output)")
        #expect(row?.contains(String(files.count)) == true)
    }

    @Test("A series sent to review satisfies no trigger")
    func reviewedSeriesDoNotTrigger() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let script = try Self.pipeline(root, "touch \(root)/fired")
        let (agent, running) = try Self.agent(root, Self.triggerRule(root, extra: "    minimum_confidence: 0.9\n    review: \(root)/review", trigger: """
              - name: diffusion
                requires: [dwi]
                quiet_seconds: 1
                command: [\(script)]
        """))
        // The shipped models disagree on this Philips DTI (forest dwi, CNN other): confidence 0.5, review.
        let files = try Self.copy("dcm_qa_philips__S601_dti_ax", into: root + "/in")
        #expect(await eventually(120) { allFiles(under: root + "/review").filter { $0.hasSuffix(".dcm") }.count == files.count })
        try await Task.sleep(nanoseconds: 3_000_000_000)
        // status, from the running agent: the study waits for a DWI that is not in review.
        let configuration = root + "/mrsort.yaml"
        try Self.triggerRule(root, extra: "    minimum_confidence: 0.9\n    review: \(root)/review", trigger: """
              - name: diffusion
                requires: [dwi]
                command: [\(script)]
        """).write(toFile: configuration, atomically: true, encoding: .utf8)
        let status = try run(Paths.mrsort, ["status", "--config", configuration])
        let row = status.output.split(separator: "\n").first { $0.hasPrefix("diffusion") }.map { $0.split(separator: " ").map(String.init) }
        // waiting 1, due 0, running 0, retrying 0, fired 0.
        #expect(row.map { Array($0.prefix(6)) } == ["diffusion", "1", "0", "0", "0", "0"], "\(status.output)")
        agent.stop()
        try await running.value
        let decision = try #require(JSONLinesLog<SeriesDecision>.read(root + "/state/series.jsonl").last)
        #expect(decision.review && decision.classification.sequence == .dwi)
        #expect(!FileManager.default.fileExists(atPath: root + "/fired"))
        #expect(JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").isEmpty)
    }

    @Test("Two studies of one PatientID and date without AccessionNumber land in folders of their own (the default layout)")
    func studiesNeverShareFolders() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let (agent, running) = try Self.agent(root, """
        state_directory: \(root)/state
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: 1
            action: move
            output: \(root)/out
            quarantine: \(root)/quarantine
        """)
        let first = try Self.copy("dcm_qa_decubitus__S2_t1_fl2d_sag", into: root + "/in")
        // The same acquisition as a second study: new study, series and instance UIDs, as a
        // de-identified export of another patient with one shared PatientID would look.
        let staging = root + "/staging"
        let second = try Self.copy("dcm_qa_decubitus__S2_t1_fl2d_sag", into: try {
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            return staging
        }())
        let uid = { "2.25." + String(UInt64.random(in: 1...UInt64.max)) }
        let regenerated = try run("/usr/bin/dcmodify", ["-nb", "-m", "(0020,000d)=" + uid(), "-m", "(0020,000e)=" + uid(), "-gin",
                                                        "-ea", "(0008,0050)"] + second)
        #expect(regenerated.status == 0, "\(regenerated.error)")
        for file in second { try FileManager.default.moveItem(atPath: file, toPath: root + "/in/b-" + (file as NSString).lastPathComponent) }
        #expect(await eventually(120) { allFiles(under: root + "/out").count == first.count + second.count })
        agent.stop()
        try await running.value
        var studies: [String: Set<String>] = [:]
        for path in allFiles(under: root + "/out") {
            let header = try #require(try ImageHeader.read(from: path).first)
            let relative = path.dropFirst(root.count + 5).split(separator: "/")
            studies[header.studyInstanceUID, default: []].insert(relative.prefix(2).joined(separator: "/"))
        }
        #expect(studies.count == 2)
        let folders = studies.values.map { $0 }
        #expect(folders.allSatisfy { $0.count == 1 })
        #expect(Set(folders.flatMap { $0 }).count == 2, "\(studies)")
    }

    @Test("mrsort relabel moves a handled series to its corrected place, leaves it where a correction keeps the place, records the corrections; status shows them")
    func relabelAndStatus() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.folders(root)
        let text = """
        state_directory: \(root)/state
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: 1
            action: rewrite+move
            output: \(root)/out
            layout: "{SeriesNumber}_{sequence}_{orientation}/{SOPInstanceUID}.dcm"
            quarantine: \(root)/quarantine
        """
        try text.write(toFile: root + "/mrsort.yaml", atomically: true, encoding: .utf8)
        let (agent, running) = try Self.agent(root, text)
        let sources = try Self.copy("dcm_qa_decubitus__S2_t1_fl2d_sag", into: root + "/in")
        let series = try #require(try ImageHeader.read(from: sources[0]).first).seriesInstanceUID
        #expect(await eventually(120) { allFiles(under: root + "/out").count == sources.count })
        // The decision is recorded once the whole series is done.
        #expect(await eventually(120) { JSONLinesLog<SeriesDecision>.read(root + "/state/series.jsonl").count == 1 })
        let before = Set(allFiles(under: root + "/out").map { ($0 as NSString).deletingLastPathComponent })

        // A correction to another class (whatever the models said, the layout changes) ...
        let relabel = try run(Paths.mrsort, ["relabel", series, "--sequence", "t1_post", "--orientation", "sagittal", "--config", root + "/mrsort.yaml"])
        #expect(relabel.status == 0, "\(relabel.error)")
        let moved = await eventually(120) {
            allFiles(under: root + "/out").filter { $0.contains("/2_t1_post_sagittal/") }.count == sources.count
        }
        #expect(moved)
        #expect(await eventually(120) { JSONLinesLog<SeriesDecision>.read(root + "/state/series.jsonl").count == 2 })
        // ... and one that keeps the class: the files are already in place and must stay there.
        let again = try run(Paths.mrsort, ["relabel", series, "--sequence", "t1_post", "--orientation", "sagittal", "--config", root + "/mrsort.yaml"])
        #expect(again.status == 0, "\(again.error)")
        #expect(await eventually(120) { JSONLinesLog<SeriesDecision>.read(root + "/state/series.jsonl").count == 3 })
        // The agent rewrites its status file within a few seconds of a change.
        var status = try run(Paths.mrsort, ["status", "--config", root + "/mrsort.yaml"])
        _ = try await eventually(120) {
            status = try run(Paths.mrsort, ["status", "--config", root + "/mrsort.yaml"])
            return status.output.contains("(corrected)")
        }
        agent.stop()
        try await running.value

        #expect(allFiles(under: root + "/out").count == sources.count)
        #expect(before != ["\(root)/out/2_t1_post_sagittal"])
        for path in allFiles(under: root + "/out") {
            #expect(path.contains("/2_t1_post_sagittal/"))
            #expect(try ImageHeader.read(from: path).first?.seriesDescription == "t1_post sagittal")
        }
        let corrections = JSONLinesLog<RelabelRequest>.read(root + "/state/corrections.jsonl")
        #expect(corrections.map(\.sequence) == [.t1Post, .t1Post])
        #expect(status.status == 0)
        #expect(status.output.contains("t1_post (corrected)"))
        #expect(status.output.contains("series classified 1"))
        // Relabel moves are not deliveries, and the series is only where it is now.
        #expect(status.output.contains("files seen \(sources.count),"))
        #expect(status.output.contains("files delivered \(sources.count),"))
        let decision = try #require(JSONLinesLog<SeriesDecision>.read(root + "/state/series.jsonl").last)
        #expect(decision.folders == [root + "/out/2_t1_post_sagittal"])
        let folders = try FileManager.default.contentsOfDirectory(atPath: root + "/out")
        #expect(folders == ["2_t1_post_sagittal"], "the old folders stay behind: \(folders)")

        let unknown = try run(Paths.mrsort, ["relabel", "1.2.3.4", "--sequence", "t1_pre", "--config", root + "/mrsort.yaml"])
        #expect(unknown.status != 0)
        #expect(unknown.error.contains("series 1.2.3.4 has not been handled"))
    }
}
