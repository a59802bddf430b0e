import Agent
import ArgumentParser
import DICOM
import Dispatch
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `mrsort receive NAME`: one DICOM listener of the configuration, as `mrsort-receiver@NAME` runs it.
struct Receive: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receive DICOM instances by C-STORE into a watched folder (one receiver of the configuration).",
        discussion: """
        Listens on the receiver's port as its AE title and accepts associations only from the \
        allowed calling AE titles. Each instance is written into a hidden staging folder, synced, \
        and then linked into the receiver's folder as <SOPInstanceUID>.dcm before the sender is \
        told it was stored: the agent never reads a partial file. Runs until SIGTERM or SIGINT, \
        which let the associations in progress end. Status goes to <state>/receivers/NAME.json.
        """
    )

    @Argument(help: "The receiver's name in the configuration's receivers: list.")
    var name: String

    @Option(help: "Configuration file.")
    var config = AgentConfiguration.defaultPath

    func run() throws {
        let configuration = try AgentConfiguration.load(contentsOf: config)
        guard let receiver = configuration.receivers.first(where: { $0.name == name }) else {
            let known = configuration.receivers.map(\.name)
            throw CommandFailure("\(config): no receiver named \"\(name)\"" + (known.isEmpty ? "; receivers: is empty" : "; receivers: " + known.joined(separator: ", ")),
                                 status: ExitStatus.configuration)
        }
        LoggingSystem.bootstrap { label in
            var handler = StandardErrorLogHandler(label: label)
            handler.logLevel = configuration.logLevel
            return handler
        }
        let logger = Logger(label: "mrsort-receiver")
        let state = StateDirectory(configuration.stateDirectory)
        let statusPath = state.receivers + "/" + receiver.name + ".json"
        let listener = StorageReceiver(
            aeTitle: receiver.aeTitle, port: receiver.port, allowedCallingAETitles: receiver.allowedCallingAETitles,
            folder: receiver.folder, staging: receiver.staging, maximumAssociations: receiver.maximumAssociations,
            minimumFreeBytes: UInt64(receiver.minimumFreeMegabytes) << 20, timeoutSeconds: receiver.timeoutSeconds
        )
        var status = ReceiverStatus(name: receiver.name, aeTitle: receiver.aeTitle, port: receiver.port, pid: getpid(),
                                    started: Date(), updated: Date(), listening: true, counters: .init())
        let outcome = ReceiverOutcome()
        let thread = Thread {
            do {
                try listener.run { isError, message in
                    if isError { logger.warning("\(message)") } else { logger.info("\(message)") }
                }
            } catch {
                outcome.set(error)
            }
            outcome.finish()
        }
        thread.start()
        let signals = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                logger.notice("stopping: the associations in progress end first")
                StorageReceiver.stop()
            }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        let notifier = ServiceNotifier()
        var ready = false
        write(status, to: statusPath, logger: logger)
        var lastWatchdog = Date.distantPast
        // The port opens as the thread starts; one that cannot be opened ends the thread at once.
        while !outcome.isFinished(waiting: 0.5) {
            if !ready {
                ready = true
                logger.notice("listening", metadata: ["ae title": "\(receiver.aeTitle)", "port": "\(receiver.port)", "folder": "\(receiver.folder)",
                                                      "allowed calling AE titles": "\(receiver.allowedCallingAETitles.isEmpty ? "any" : receiver.allowedCallingAETitles.joined(separator: ", "))"])
                notifier.notify("READY=1\nSTATUS=listening on port \(receiver.port) as \(receiver.aeTitle)")
            }
            if let interval = notifier.watchdogInterval, Date().timeIntervalSince(lastWatchdog) >= interval {
                notifier.notify("WATCHDOG=1")
                lastWatchdog = Date()
            }
            // Written when the counters change (at most twice a second), else once a minute as a heartbeat.
            let counters = StorageReceiver.counters
            if counters != status.counters || Date().timeIntervalSince(status.updated) >= 60 {
                status.counters = counters
                status.updated = Date()
                write(status, to: statusPath, logger: logger)
            }
        }
        status.listening = false
        status.counters = StorageReceiver.counters
        status.updated = Date()
        status.lastError = outcome.error.map { "\($0)" }
        write(status, to: statusPath, logger: logger)
        if let error = outcome.error { throw error }
        logger.notice("stopped", metadata: ["instances received": "\(status.counters.instancesReceived)"])
    }

    private func write(_ status: ReceiverStatus, to path: String, logger: Logger) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        do {
            try FileSystem.createDirectory((path as NSString).deletingLastPathComponent)
            try FileSystem.writeAtomically(try encoder.encode(status), to: path, mode: 0o640)
        } catch {
            logger.warning("cannot write the receiver's status", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}

/// How the listening thread ended, for the main thread.
private final class ReceiverOutcome: @unchecked Sendable {
    private let condition = NSCondition()
    private var finished = false
    private var failure: Error?

    func set(_ error: Error) {
        condition.lock()
        failure = error
        condition.unlock()
    }

    func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// Waits up to `seconds` for the thread to end; whether it has.
    func isFinished(waiting seconds: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if !finished { _ = condition.wait(until: Date().addingTimeInterval(seconds)) }
        return finished
    }

    var error: Error? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }
}
