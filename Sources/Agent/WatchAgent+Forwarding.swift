import Classification
import DICOM
import Dispatch
import Foundation
import Logging

/// Forwarding: sorted series sent by C-STORE to the DICOM destinations their rule names.
extension WatchAgent {
    /// Where sends run: each blocks on the network for as long as its destination takes, so
    /// they stay off the work queue that classification shares (one send per destination at a time).
    static let network = DispatchQueue(label: "mrsort.forward", qos: .utility, attributes: .concurrent)

    /// Queues a sorted series' files for each destination its rule forwards its class to. A series
    /// placed again (a relabel, a study-context revision) replaces its queued sends: it is sent as
    /// it is now, and a destination that has it already receives the same instances again.
    func queueForwarding(_ decision: SeriesDecision, key: SeriesKey, files: [String], replacing: Bool) {
        if replacing {
            for job in forwardQueue.all where job.series == key.series {
                try? forwardQueue.complete(job)
            }
        }
        guard !decision.review, !files.isEmpty, let rule = rule(named: decision.rule) else { return }
        let now = Date()
        for route in rule.forward where route.forwards(decision.classification.sequence) {
            let id = ISO8601DateFormatter.string(from: now, timeZone: .gmt, formatOptions: [.withYear, .withMonth, .withDay, .withTime])
                + "-" + PathTemplate.key(key.series) + "-" + String(UUID().uuidString.prefix(8))
            let job = ForwardJob(id: id, destination: route.destination, rule: rule.name, study: key.study, series: key.series,
                                 sequence: decision.classification.sequence, files: files.sorted(), attempts: 0, due: now, created: now)
            do {
                try forwardQueue.enqueue(job)
            } catch {
                counters.errors += 1
                logger.error("cannot queue a series for forwarding", metadata: ["series": "\(key.series)", "destination": "\(route.destination)", "error": "\(error)"])
                try? audit.append(AuditRecord(time: now, rule: rule.name, file: files[0], study: key.study, series: key.series,
                                              sequence: decision.classification.sequence, action: "forward failed",
                                              reason: "destination \(route.destination): cannot queue: \(error)"))
            }
        }
    }

    /// Starts the next due send of every destination that is not sending.
    func forwardDue(now: Date) {
        guard !stopping else { return }
        for destination in configuration.destinations where sending[destination.name] == nil {
            guard let job = forwardQueue.next(for: destination.name, at: now) else { continue }
            sending[destination.name] = job
            let node = StorageDestination(host: destination.host, port: destination.port, calledAETitle: destination.calledAETitle,
                                          callingAETitle: destination.callingAETitle, timeoutSeconds: destination.timeoutSeconds)
            let continuation = continuation
            Self.network.async {
                continuation.yield(.forwarded(job, node.send(job.files)))
            }
        }
    }

    /// Records what the destination acknowledged, and what becomes of the rest: retried after
    /// `retry_seconds`, or, after the last retry, set aside in the dead-letter folder.
    func forwarded(_ job: ForwardJob, _ report: StorageDestination.Report) {
        sending[job.destination] = nil
        let now = Date()
        let destination = configuration.destinations.first { $0.name == job.destination }
        let address = destination.map { "\($0.calledAETitle)@\($0.host):\($0.port)" } ?? job.destination
        var left: [String] = []
        var stored = 0
        var firstRefusal: String?
        for (file, outcome) in zip(job.files, report.outcomes) {
            if outcome.isStored { stored += 1 } else { left.append(file) }
            // A send that never reached a file (the destination is down) is one line below, not one per file.
            if outcome == .notSent { continue }
            if !outcome.isStored { firstRefusal = firstRefusal ?? "\(file): \(outcome)" }
            try? audit.append(AuditRecord(time: now, rule: job.rule, file: file, study: job.study, series: job.series, sequence: job.sequence,
                                          action: outcome.isStored ? "forward" : "forward failed", destination: address,
                                          reason: "destination \(job.destination): \(outcome)"))
        }
        var standing = forwardStanding[job.destination] ?? ForwardStanding()
        standing.instancesForwarded += stored
        counters.forwarded += stored
        // Replaced while it was sent (the series was placed again): its new job carries the files
        // as they are now; this one must not be written back.
        guard forwardQueue.contains(job) else {
            forwardStanding[job.destination] = standing
            return
        }
        if left.isEmpty {
            standing.lastSuccess = now
            forwardStanding[job.destination] = standing
            do {
                try forwardQueue.complete(job)
            } catch {
                logger.error("forwarded series stays queued (it will be sent again)", metadata: ["series": "\(job.series)", "error": "\(error)"])
            }
            logger.info("series forwarded", metadata: ["series": "\(job.series)", "destination": "\(address)", "instances": "\(stored)"])
            return
        }
        var retry = job
        retry.files = left
        retry.attempts += 1
        retry.lastError = report.error ?? firstRefusal ?? "not every instance was acknowledged"
        standing.lastError = retry.lastError
        standing.lastErrorTime = now
        forwardStanding[job.destination] = standing
        let retries = destination?.retries ?? 0
        if let reason = report.error {
            try? audit.append(AuditRecord(time: now, rule: job.rule, file: left[0], study: job.study, series: job.series, sequence: job.sequence,
                                          action: "forward failed", destination: address,
                                          reason: "destination \(job.destination): \(left.count) instance(s) not sent: \(reason)"))
        }
        if retry.attempts > retries {
            counters.errors += 1
            do {
                let folder = try forwardQueue.deadLetter(retry)
                logger.error("series not forwarded after its last retry; set aside", metadata: [
                    "series": "\(job.series)", "destination": "\(address)", "instances": "\(left.count)", "dead letter": "\(folder)",
                    "error": "\(retry.lastError ?? "")",
                ])
                try? audit.append(AuditRecord(time: now, rule: job.rule, file: folder, study: job.study, series: job.series, sequence: job.sequence,
                                              action: "forward dead-letter", destination: address,
                                              reason: "destination \(job.destination): \(left.count) instance(s) after \(retry.attempts) send(s): \(retry.lastError ?? "")"))
            } catch {
                // Kept queued (retried at the next start or reload) rather than dropped.
                logger.error("cannot set aside a series that could not be forwarded", metadata: ["series": "\(job.series)", "error": "\(error)"])
            }
            return
        }
        retry.due = now.addingTimeInterval(destination?.retrySeconds ?? 300)
        do {
            try forwardQueue.update(retry)
        } catch {
            logger.error("cannot record a forwarding retry", metadata: ["series": "\(job.series)", "error": "\(error)"])
        }
        logger.warning("series not (wholly) forwarded; retrying", metadata: [
            "series": "\(job.series)", "destination": "\(address)", "left": "\(left.count)", "attempt": "\(retry.attempts)",
            "retry at": "\(retry.due)", "error": "\(retry.lastError ?? "")",
        ])
    }

    /// Each destination's queue and last outcomes, for `mrsort status`.
    func destinationStatus() -> [AgentStatus.Destination] {
        let names = Set(configuration.destinations.map(\.name)).union(forwardQueue.jobs.keys)
        return names.sorted().map { name in
            let configured = configuration.destinations.first { $0.name == name }
            let queued = forwardQueue.jobs[name] ?? []
            let standing = forwardStanding[name] ?? ForwardStanding()
            return AgentStatus.Destination(
                name: name, address: configured.map { "\($0.calledAETitle)@\($0.host):\($0.port)" } ?? "(not configured)",
                queuedSeries: queued.count, queuedInstances: queued.reduce(0) { $0 + $1.files.count }, sending: sending[name] != nil,
                nextAttempt: queued.map(\.due).min(), deadLetters: forwardQueue.deadLetterCount(name),
                instancesForwarded: standing.instancesForwarded, lastSuccess: standing.lastSuccess,
                lastError: standing.lastError ?? queued.compactMap(\.lastError).first, lastErrorTime: standing.lastErrorTime
            )
        }
    }

    /// What one destination did since the agent started.
    struct ForwardStanding {
        var instancesForwarded = 0
        var lastSuccess: Date?
        var lastError: String?
        var lastErrorTime: Date?
    }
}
