import Agent
import ArgumentParser
import Classification
import Dispatch
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `mrsort watch`: the agent, in the foreground, as systemd runs it.
struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch the drop folders of a configuration and sort the series that arrive.",
        discussion: """
        Runs in the foreground until SIGTERM or SIGINT, which finish the series in hand first. \
        SIGHUP re-reads the configuration without losing pending series. Under systemd \
        (Type=notify) readiness and watchdog pings go to $NOTIFY_SOCKET. Logs go to stderr.
        """
    )

    @Option(help: "Configuration file.")
    var config = AgentConfiguration.defaultPath

    @Flag(inversion: .prefixedNo, help: "Settle pre/post-contrast T1 from the study's earlier series.")
    var studyContext = true

    func run() async throws {
        let configuration = try AgentConfiguration.load(contentsOf: config)
        LoggingSystem.bootstrap { label in
            var handler = StandardErrorLogHandler(label: label)
            handler.logLevel = configuration.logLevel
            return handler
        }
        let logger = Logger(label: "mrsort")
        let models = configuration.models ?? ModelDirectory.locate()
        var classifier = try SeriesClassifier(modelDirectory: models)
        classifier.cnnImagesPerSeries = configuration.cnnImagesPerSeries
        // The agent runs series side by side (worker_threads); an OpenBLAS pool under each worker
        // only spins in sched_yield (a third of the CPU with short series, benchmarks/README.md).
        ConvolutionalNetwork.setThreads(1)
        let agent = try WatchAgent(
            configuration: configuration, configurationPath: config, classifier: classifier,
            studyContext: studyContext, logger: logger
        )
        let signals = [SIGTERM, SIGINT, SIGHUP].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if number == SIGHUP { agent.reload() } else { agent.stop() }
            }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        try await agent.run()
    }
}

/// `mrsort check-config`: validates a configuration without starting anything.
struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file; every problem is printed with its line and column."
    )

    @Argument(help: "Configuration file.")
    var file = AgentConfiguration.defaultPath

    @Flag(help: "Print every folder the configuration reads or writes, one per line (for ReadWritePaths=).")
    var folders = false

    func run() throws {
        do {
            // --folders serves the systemd generator at boot, when a network share may not be
            // mounted yet: the folders are listed whether or not they exist now.
            let configuration = try AgentConfiguration.load(contentsOf: file, checkFolders: !folders)
            if folders {
                configuration.folders.forEach { print($0) }
            } else {
                for warning in configuration.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
                print("\(file): valid, \(configuration.rules.count) rule(s): " + configuration.rules.map { "\($0.name) (\($0.action))" }.joined(separator: ", "))
            }
        } catch {
            // The problems alone, one per line, as an editor's quickfix list reads them.
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(ExitStatus.of(error) ?? ExitStatus.configuration)
        }
    }
}

/// `mrsort status`: what the running agent last wrote to its state directory.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show pending series, recent decisions and counters of the agent."
    )

    @Option(help: "Configuration file (names the state directory).")
    var config = AgentConfiguration.defaultPath

    @Flag(help: "Print the status JSON as the agent wrote it.")
    var json = false

    func run() throws {
        let configuration = try AgentConfiguration.load(contentsOf: config, checkFolders: false)
        let path = StateDirectory(configuration.stateDirectory).status
        guard let data = FileManager.default.contents(atPath: path) else {
            // Not a usage mistake: no usage text, the data's exit status.
            throw CommandFailure("no status yet: \(path) does not exist; the agent has not run with the state directory of \(config)",
                                 status: ExitStatus.noInput)
        }
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let status = try JSONDecoder.iso8601.decode(AgentStatus.self, from: data)
        let running = Self.exists(status.pid)
        let age = Date().timeIntervalSince(status.updated)
        print("agent: pid \(status.pid) \(running ? "running" : "not running"), started \(status.started), status \(Int(age)) s old")
        let c = status.counters
        print("files seen \(c.filesSeen), series classified \(c.seriesClassified), files delivered \(c.filesDelivered), review \(c.review), quarantined \(c.quarantined), triggers \(c.triggers), instances forwarded \(c.forwarded), errors \(c.errors), inotify overflows \(c.overflows)")
        print("\npending series: \(status.pending.count)")
        if !status.pending.isEmpty {
            // The series' whole UID, as in the decisions below: it is what a person pastes elsewhere.
            print(TextTable(header: ["study", "series", "number", "files", "quiet s", "rule"], rows: status.pending.map {
                [String($0.study.suffix(12)), $0.series, $0.seriesNumber.map(String.init) ?? "-", String($0.files),
                 String(Int($0.quietFor)), $0.rule]
            }).render())
        }
        print("\nrecent decisions:")
        // The whole UID: it is what `mrsort relabel` takes.
        print(TextTable(header: ["time", "series", "number", "sequence", "orientation", "confidence", "review", "folder"], rows: status.recent.map {
            let c = $0.classification
            return [ISO8601DateFormatter().string(from: $0.time), c.seriesInstanceUID, c.seriesNumber.map(String.init) ?? "-",
                    c.sequence.rawValue + ($0.correctedBy == nil ? "" : " (corrected)"), c.orientation.rawValue,
                    String(format: "%.2f", c.confidence), $0.review ? "yes" : "", $0.folders.first ?? ""]
        }).render())
        printReceivers(configuration)
        if let destinations = status.destinations, !destinations.isEmpty {
            let time = { (date: Date?) in date.map { ISO8601DateFormatter().string(from: $0) } ?? "-" }
            print("\nDICOM destinations (queued: series and instances waiting; dead letters: series set aside after their last retry):")
            let rows: [[String]] = destinations.map { (d: AgentStatus.Destination) -> [String] in
                let error: String = d.lastError.map { time(d.lastErrorTime) + " " + $0 } ?? "-"
                return [d.name, d.address, "\(d.queuedSeries) (\(d.queuedInstances))", d.sending ? "yes" : "", time(d.nextAttempt),
                        String(d.instancesForwarded), String(d.deadLetters), time(d.lastSuccess), error]
            }
            print(TextTable(header: ["destination", "address", "queued", "sending", "next attempt", "forwarded", "dead letters", "last success", "last error"],
                            rows: rows).render())
        }
        let triggers = TriggerSummary.summarise(JSONLinesLog<TriggerRecord>.read(StateDirectory(configuration.stateDirectory).triggers),
                                                live: running ? status.triggers ?? [] : [])
        if !triggers.isEmpty {
            print("\nstudy triggers (waiting: studies without the required classes; due: waiting for quiet or their turn):")
            print(TextTable(header: ["trigger", "waiting", "due", "running", "retrying", "fired", "succeeded", "failed", "interrupted", "late series", "last"],
                            rows: triggers.map(\.row)).render())
        }
    }
}

extension Status {
    /// Whether a process exists: signal 0 checks without sending; EPERM means it exists but
    /// belongs to another user (the service's, seen by a member of group mrsort).
    static func exists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// The DICOM receivers of the configuration, from the status files `mrsort receive` writes.
    func printReceivers(_ configuration: AgentConfiguration) {
        guard !configuration.receivers.isEmpty else { return }
        let folder = StateDirectory(configuration.stateDirectory).receivers
        print("\nDICOM receivers (mrsort-receiver@NAME):")
        print(TextTable(header: ["receiver", "listening", "associations", "refused", "instances", "failed", "MB", "since", "last error"],
                        rows: configuration.receivers.map { receiver in
            guard let data = FileManager.default.contents(atPath: folder + "/" + receiver.name + ".json"),
                  let status = try? JSONDecoder.iso8601.decode(ReceiverStatus.self, from: data) else {
                return [receiver.name, "never started", "-", "-", "-", "-", "-", "-", "-"]
            }
            let running = status.listening && Status.exists(status.pid)
            let c = status.counters
            return [receiver.name, running ? "\(status.aeTitle):\(status.port) pid \(status.pid)" + (c.associationsActive > 0 ? ", \(c.associationsActive) active" : "") : "no",
                    String(c.associationsAccepted), String(c.associationsRefused), String(c.instancesReceived), String(c.instancesFailed),
                    String(c.bytesReceived >> 20), ISO8601DateFormatter().string(from: status.started), status.lastError ?? "-"]
        }).render())
    }
}

/// One trigger's lines of `triggers.jsonl` counted, beside where its studies stand now (from the
/// running agent's status), for `mrsort status`.
struct TriggerSummary {
    var name: String
    var waiting = 0
    var due = 0
    /// Commands running now: from the agent's status, else started lines whose process exists.
    var running: [String] = []
    /// Studies due to start again after a failure, with the first time due.
    var retrying = 0
    var nextRetry: Date?
    var fired = 0
    var succeeded = 0
    var failed = 0
    var interrupted = 0
    var late = 0
    var last: String = "-"

    var row: [String] {
        [name, String(waiting), String(due), running.isEmpty ? "0" : running.joined(separator: ", "),
         retrying == 0 ? "0" : "\(retrying) (next \(nextRetry.map { ISO8601DateFormatter().string(from: $0) } ?? "-"))",
         String(fired), String(succeeded), String(failed), String(interrupted), String(late), last]
    }

    static func summarise(_ records: [TriggerRecord], live: [AgentStatus.Trigger]) -> [TriggerSummary] {
        var byName: [String: TriggerSummary] = [:]
        var started: [Int32: TriggerRecord] = [:]
        for record in records {
            var summary = byName[record.trigger] ?? TriggerSummary(name: record.trigger)
            let time = ISO8601DateFormatter().string(from: record.time)
            let retry = record.retryAt.map { "; retry at " + ISO8601DateFormatter().string(from: $0) } ?? ""
            switch record.event {
            case .fired:
                summary.fired += 1
                summary.last = "\(time) fired" + ((record.attempt ?? 1) > 1 ? " (attempt \(record.attempt ?? 1))" : "")
                    + ((record.revision ?? 1) > 1 ? " (revision \(record.revision ?? 1))" : "")
            case .started:
                if let pid = record.pid { started[pid] = record }
            case .ended(let status):
                if status == 0 { summary.succeeded += 1 } else { summary.failed += 1 }
                summary.last = "\(time) exit \(status)" + (record.timedOut == true ? " (timed out)" : "") + retry
            case .failed:
                summary.failed += 1
                summary.last = "\(time) failed: \(record.error ?? "")" + retry
            case .interrupted:
                summary.interrupted += 1
                summary.last = "\(time) interrupted" + retry
            case .lateSeries:
                summary.late += 1
            }
            if record.event != .started, let pid = record.pid { started[pid] = nil }
            byName[record.trigger] = summary
        }
        if live.isEmpty {
            for (pid, record) in started where Status.exists(pid) { byName[record.trigger]?.running.append("pid \(pid)") }
        }
        for trigger in live {
            var summary = byName[trigger.name] ?? TriggerSummary(name: trigger.name)
            summary.waiting += trigger.waitingForClasses
            summary.due += trigger.due
            summary.retrying += trigger.retries.count
            summary.nextRetry = ([summary.nextRetry].compactMap { $0 } + trigger.retries.map(\.at)).min()
            summary.running += trigger.running.map { "pid \($0.pid) since \(ISO8601DateFormatter().string(from: $0.since))" }
            byName[trigger.name] = summary
        }
        return byName.values.sorted { $0.name < $1.name }
    }
}

/// `mrsort relabel`: a person's correction, applied by the running agent.
struct Relabel: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Correct the classification of a handled series; the agent re-applies its action and records the correction."
    )

    @Argument(help: "SeriesInstanceUID of the series.")
    var series: String

    @Option(help: "The correct sequence class.")
    var sequence: String

    @Option(help: "The correct orientation.")
    var orientation: String?

    @Option(help: "Configuration file (names the state directory).")
    var config = AgentConfiguration.defaultPath

    func run() throws {
        guard let sequence = SequenceClass(rawValue: sequence) else {
            throw ValidationError("unknown sequence class \"\(sequence)\"; one of " + SequenceClass.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let orientation = try orientation.map { text in
            guard let value = Orientation(rawValue: text) else {
                throw ValidationError("unknown orientation \"\(text)\"; one of " + Orientation.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return value
        }
        let configuration = try AgentConfiguration.load(contentsOf: config, checkFolders: false)
        let state = StateDirectory(configuration.stateDirectory)
        guard JSONLinesLog<SeriesDecision>.read(state.decisions).contains(where: { $0.classification.seriesInstanceUID == series }) else {
            throw CommandFailure("series \(series) has not been handled by the agent with state in \(state.path)",
                                 status: ExitStatus.dataError)
        }
        let request = RelabelRequest(series: series, sequence: sequence, orientation: orientation,
                                     requestedBy: ProcessInfo.processInfo.environment["SUDO_USER"] ?? Self.userName(),
                                     time: Date())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        let path = state.requests + "/" + UUID().uuidString + ".json"
        try FileSystem.writeAtomically(try encoder.encode(request), to: path)
        print("queued: \(path); the running agent applies it within a second")
    }

    /// The name of the user running the command, from the user database (services and cron jobs
    /// have no `USER`), else the numeric uid.
    static func userName() -> String {
        let uid = getuid()
        if let entry = getpwuid(uid), let name = entry.pointee.pw_name { return String(cString: name) }
        return "uid \(uid)"
    }
}
