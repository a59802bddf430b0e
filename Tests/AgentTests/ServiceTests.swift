#if canImport(Glibc)
import Glibc
#endif
import DICOM
import Foundation
import Testing
@testable import Agent

/// `mrsort watch` as a real process: kill -9 at random instants, systemd's notify protocol, SIGHUP.
@Suite("mrsort watch as a service", .serialized)
struct ServiceTests {
    static let series = ["dcm_qa_decubitus__S2_t1_fl2d_sag", "dcm_qa_decubitus__S3_t1_fl2d_sag", "dcm_qa_philips__S601_dti_ax",
                         "dcm_qa_decubitus__S4_ep2d_diff_mddw_20_p2", "dbdicom_rider__S14_sag_3d_gre_+c", "dcm_qa_philips_enh__S2201_DTI_S2MB2"]

    static func start(_ configuration: String, environment extra: [String: String] = [:], standardError: Any? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.mrsort)
        process.arguments = ["watch", "--config", configuration]
        var environment = ProcessInfo.processInfo.environment
        environment["MRSORT_MODELS"] = Paths.models
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        process.standardError = standardError ?? FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        return process
    }

    static func setUp(_ root: String, action: String = "move", quiet: Int = 1) throws -> String {
        for folder in ["in", "out", "quarantine"] { try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true) }
        let path = root + "/mrsort.yaml"
        try """
        state_directory: \(root)/state
        rules:
          - name: mri
            watch: \(root)/in
            quiet_seconds: \(quiet)
            action: \(action)
            output: \(root)/out
            quarantine: \(root)/quarantine
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `move` takes the group-commit path (links, then one sync per batch), `rewrite+move` the
    /// copy-rewrite-link path.
    @Test("kill -9 at random instants loses no file and duplicates none", arguments: ["move", "rewrite+move"])
    func killNine(action: String) async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let configuration = try Self.setUp(root, action: action)
        var expected = Set<String>()
        var generator = SystemRandomNumberGenerator()
        for (round, name) in Self.series.enumerated() {
            let process = try Self.start(configuration)
            for file in try Paths.realSeries(name) {
                expected.insert(try #require(try ImageHeader.read(from: file).first).sopInstanceUID)
                try FileManager.default.copyItem(atPath: file, toPath: root + "/in/\(round)-" + (file as NSString).lastPathComponent)
            }
            // Somewhere between the quiet period's end and the series' last file (journal recovery
            // of half-done copies and rewrites was seen in runs of this test).
            try await Task.sleep(nanoseconds: UInt64.random(in: 1_000_000_000...1_700_000_000, using: &generator))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let process = try Self.start(configuration)
        let settled = try await eventually(180) {
            let sorted = try WatchAgentTests.instances(under: root + "/out").count
            return allFiles(under: root + "/in").isEmpty && sorted == expected.count
        }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(settled)
        #expect(process.terminationStatus == 0)
        let sorted = try WatchAgentTests.instances(under: root + "/out")
        #expect(Set(sorted.keys) == expected)
        #expect(sorted.values.allSatisfy { $0.count == 1 }, "duplicates: \(sorted.filter { $0.value.count > 1 })")
        #expect(allFiles(under: root + "/in").isEmpty)
        #expect(allFiles(under: root + "/quarantine").isEmpty)
        #expect(allFiles(under: root + "/out").allSatisfy { !$0.contains(AtomicRewrite.temporaryPrefix) })
    }

    @Test("A second agent on the same state directory, or on the same drop folder, is refused; the first loses nothing")
    func secondInstanceRefused() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let configuration = try Self.setUp(root)
        let socket = try NotifySocket(path: root + "/notify")
        let first = try Self.start(configuration, environment: ["NOTIFY_SOCKET": socket.path])
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        #expect(socket.receive(within: 120)?.hasPrefix("READY=1") == true)

        let same = try Self.refused(configuration)
        #expect(same.status != 0)
        #expect(same.error.contains("another mrsort agent (pid \(first.processIdentifier)) is running on it; a second instance is refused"), "\(same.error)")
        // Another state directory, the same drop folder.
        let other = root + "/other.yaml"
        try (try String(contentsOfFile: configuration, encoding: .utf8)).replacingOccurrences(of: "\(root)/state", with: "\(root)/state2")
            .write(toFile: other, atomically: true, encoding: .utf8)
        let shared = try Self.refused(other)
        #expect(shared.status != 0)
        #expect(shared.error.contains("\(root)/in: lock watched folder failed: another mrsort agent is watching it"), "\(shared.error)")

        // Both refused agents started and failed while the first ran: every file reaches the output.
        var expected = Set<String>()
        for name in Self.series.prefix(3) {
            for file in try Paths.realSeries(name) {
                expected.insert(try #require(try ImageHeader.read(from: file).first).sopInstanceUID)
                try FileManager.default.copyItem(atPath: file, toPath: root + "/in/" + UUID().uuidString + ".dcm")
            }
        }
        #expect(try await eventually(180) { try WatchAgentTests.instances(under: root + "/out").count == expected.count })
        kill(first.processIdentifier, SIGTERM)
        first.waitUntilExit()
        #expect(Set(try WatchAgentTests.instances(under: root + "/out").keys) == expected)
        #expect(allFiles(under: root + "/in").isEmpty)
        // Once the first has stopped, an agent may start on the same folders.
        let next = try Self.start(configuration, environment: ["NOTIFY_SOCKET": socket.path])
        defer { if next.isRunning { kill(next.processIdentifier, SIGKILL) } }
        var ready = false
        while !ready, let message = socket.receive(within: 120) { ready = message.hasPrefix("READY=1") }
        #expect(ready)
        kill(next.processIdentifier, SIGTERM)
        next.waitUntilExit()
        #expect(next.terminationStatus == 0)
    }

    @Test("Trigger commands start with no blocked or ignored signal, in their own process group, and are stopped at their timeout, even from an agent started with signals blocked")
    func triggerProcesses() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        _ = try Self.setUp(root)
        let probe = root + "/probe.sh", hang = root + "/hang.sh"
        try """
        #!/bin/sh
        # Builtins only: while the shell waits for a child it blocks signals itself.
        while IFS= read -r line; do case "$line" in SigBlk*|SigIgn*) echo "$line";; esac; done < /proc/$$/status > \(root)/probe.tmp
        echo "notify ${NOTIFY_SOCKET:-none}" >> \(root)/probe.tmp
        read -r stat < /proc/$$/stat
        set -- $stat
        echo "pgid $5 pid $$" >> \(root)/probe.tmp
        mv \(root)/probe.tmp \(root)/probe.txt

        """.write(toFile: probe, atomically: true, encoding: .utf8)
        try "#!/bin/sh\nexec sleep 120\n".write(toFile: hang, atomically: true, encoding: .utf8)
        chmod(probe, 0o755)
        chmod(hang, 0o755)
        let configuration = root + "/mrsort.yaml"
        let triggers = """

            triggers:
              - name: probe
                requires: [dwi]
                quiet_seconds: 1
                command: [\(probe)]
              - name: hang
                requires: [dwi]
                quiet_seconds: 1
                timeout_seconds: 2
                command: [\(hang)]
        """
        try (try String(contentsOfFile: configuration, encoding: .utf8) + triggers).write(toFile: configuration, atomically: true, encoding: .utf8)
        // The agent inherits a mask with SIGTERM, SIGALRM and SIGUSR1 blocked, as from a parent that blocks them.
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        for signal in [SIGTERM, SIGALRM, SIGUSR1] { sigaddset(&blocked, signal) }
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        let agent: Process
        do {
            agent = try Self.start(configuration, environment: ["NOTIFY_SOCKET": root + "/notify"])
            pthread_sigmask(SIG_SETMASK, &previous, nil)
        } catch {
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            throw error
        }
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        // The set-up holds: the agent itself runs with them blocked (bits 14, 13 and 9 of SigBlk).
        let status = try String(contentsOfFile: "/proc/\(agent.processIdentifier)/status", encoding: .utf8)
        let mask = status.split(separator: "\n").first { $0.hasPrefix("SigBlk:") }.flatMap { UInt64($0.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) }
        #expect(mask.map { $0 & 0x6200 == 0x6200 } == true, "\(status)")
        for file in try Paths.realSeries("dcm_qa_philips__S601_dti_ax") {
            try FileManager.default.copyItem(atPath: file, toPath: root + "/in/" + (file as NSString).lastPathComponent)
        }
        let ended = await eventually(120) {
            JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").filter { $0.exitStatus != nil }.count == 2
        }
        agent.terminate()
        agent.waitUntilExit()
        #expect(ended)
        let lines = try String(contentsOfFile: root + "/probe.txt", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.contains("SigBlk:\t0000000000000000"), "\(lines)")
        #expect(lines.contains("notify none"), "systemd's notify socket is the agent's alone: \(lines)")
        // Signals 32 and 33 are glibc's own (its threads' cancellation), which no program may use or reset.
        let ignored = lines.first { $0.hasPrefix("SigIgn:") }.flatMap { UInt64($0.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) }
        #expect(ignored.map { $0 & ~0x1_8000_0000 } == 0, "\(lines)")
        let ids = try #require(lines.last).split(separator: " ")
        #expect(ids.count == 4 && ids[1] == ids[3], "the command leads its own process group: \(lines)")
        let records = JSONLinesLog<TriggerRecord>.read(root + "/state/triggers.jsonl").filter { $0.exitStatus != nil }
        #expect(records.first { $0.trigger == "probe" }?.exitStatus == 0)
        let stopped = try #require(records.first { $0.trigger == "hang" })
        #expect(stopped.exitStatus == 128 + SIGTERM)
        #expect(stopped.timedOut == true)
    }

    /// Runs `mrsort watch` expecting it to give up at once; one that keeps running (an agent that
    /// was not refused) is killed after a minute and reported with status -1.
    static func refused(_ configuration: String) throws -> (status: Int32, error: String) {
        let error = Pipe()
        let process = try start(configuration, standardError: error)
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning, Date() < deadline { usleep(100_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return (-1, "still running after 60 s")
        }
        return (process.terminationStatus, String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    @Test("Type=notify: READY, WATCHDOG, a SIGHUP reload that picks up a new folder, STOPPING, exit 0")
    func notifyAndReload() async throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let configuration = try Self.setUp(root)
        let socket = try NotifySocket(path: root + "/notify")
        let process = try Self.start(configuration, environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "1000000"])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(socket.receive(within: 120)?.hasPrefix("READY=1") == true)
        #expect(socket.receive(within: 30) == "WATCHDOG=1")

        try FileManager.default.createDirectory(atPath: root + "/in2", withIntermediateDirectories: true)
        try (try String(contentsOfFile: configuration, encoding: .utf8)).replacingOccurrences(of: "watch: \(root)/in", with: "watch: [\(root)/in, \(root)/in2]")
            .write(toFile: configuration, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        var messages: [String] = []
        while let message = socket.receive(within: 60), !message.hasPrefix("READY=1") { messages.append(message) }
        let file = try #require(try Paths.realSeries("dcm_qa_decubitus__S2_t1_fl2d_sag").first)
        try FileManager.default.copyItem(atPath: file, toPath: root + "/in2/a.dcm")
        #expect(await eventually(120) { allFiles(under: root + "/out").count == 1 })

        kill(process.processIdentifier, SIGTERM)
        var stopping = false
        while let message = socket.receive(within: 120) {
            if message == "STOPPING=1" { stopping = true; break }
        }
        process.waitUntilExit()
        #expect(stopping)
        #expect(process.terminationStatus == 0)
    }
}

/// The receiving end of systemd's notify socket, as a test stands in for systemd.
final class NotifySocket {
    let path: String
    private let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw FileSystemError(path: path, operation: "bind", code: errno) }
    }

    deinit { close(fd) }

    /// The next datagram, or nil after `seconds`.
    func receive(within seconds: Double) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(seconds * 1000)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }
}
