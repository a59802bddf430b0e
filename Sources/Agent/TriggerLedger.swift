import Foundation

/// Where each study's triggers stand: not yet fired, fired, or due to start again after a
/// failure. Rebuilt at start from `triggers.jsonl`, so that a trigger fires once per study
/// revision across restarts and a scheduled retry survives them.
struct TriggerLedger: Sendable {
    /// One trigger of one study.
    struct Entry: Sendable, Equatable {
        enum State: Sendable, Equatable {
            /// Not fired for this revision: fires once the study holds the classes and is quiet.
            case waiting
            /// Fired; nothing more to do unless a late series re-opens it.
            case fired
            /// A start failed and the trigger's `retries` allow another at this time.
            case retryAt(Date)
        }

        var state: State = .waiting
        /// Starts of the current revision so far.
        var attempt = 0
        /// The manifest revision the next or last firing carries.
        var revision = 1
    }

    private var entries: [String: [String: Entry]] = [:]

    /// The trigger's entry for the study (a fresh one when it never fired).
    func entry(study: String, trigger: String) -> Entry {
        entries[study]?[trigger] ?? Entry()
    }

    /// Records a start of the trigger for the study; returns the attempt and revision it carries.
    mutating func fire(study: String, trigger: String) -> (attempt: Int, revision: Int) {
        var entry = entry(study: study, trigger: trigger)
        entry.state = .fired
        entry.attempt += 1
        entries[study, default: [:]][trigger] = entry
        return (entry.attempt, entry.revision)
    }

    /// A start of the trigger failed; returns when it starts again, nil when its retries are spent
    /// (or the failure belongs to an earlier revision or attempt, which a newer firing replaced).
    mutating func fail(study: String, policy: StudyTrigger, attempt: Int?, revision: Int?, at time: Date) -> Date? {
        var entry = entry(study: study, trigger: policy.name)
        guard entry.state == .fired, (revision ?? 1) == entry.revision, (attempt ?? 1) == entry.attempt,
              entry.attempt <= policy.retries else { return nil }
        let due = time.addingTimeInterval(policy.retrySeconds)
        entry.state = .retryAt(due)
        entries[study, default: [:]][policy.name] = entry
        return due
    }

    /// A series arrived after the trigger fired; returns whether the trigger fires again.
    mutating func lateSeries(study: String, policy: StudyTrigger) -> Bool {
        var entry = entry(study: study, trigger: policy.name)
        guard policy.refire == .onNewSeries, entry.state != .waiting else { return false }
        entry.state = .waiting
        entry.attempt = 0
        entry.revision += 1
        entries[study, default: [:]][policy.name] = entry
        return true
    }

    /// Triggers that fired for the study and stay fired (a late series is not in their manifest).
    func fired(study: String) -> [String] {
        (entries[study] ?? [:]).filter { $0.value.state != .waiting }.map(\.key).sorted()
    }

    /// Replays `triggers.jsonl`; `policy` names a study's trigger as configured now (nil: the
    /// trigger is gone, its failures are not retried).
    mutating func replay(_ records: [TriggerRecord], policy: (_ study: String, _ trigger: String) -> StudyTrigger?) {
        for record in records {
            switch record.event {
            case .fired:
                var entry = entry(study: record.study, trigger: record.trigger)
                entry.state = .fired
                entry.attempt = record.attempt ?? 1
                entry.revision = record.revision ?? 1
                entries[record.study, default: [:]][record.trigger] = entry
            case .lateSeries:
                guard record.refire == true else { continue }
                var entry = entry(study: record.study, trigger: record.trigger)
                entry.state = .waiting
                entry.attempt = 0
                entry.revision += 1
                entries[record.study, default: [:]][record.trigger] = entry
            case .started:
                continue
            case .ended, .failed, .interrupted:
                guard record.isFailure, let policy = policy(record.study, record.trigger) else { continue }
                _ = fail(study: record.study, policy: policy, attempt: record.attempt, revision: record.revision, at: record.time)
            }
        }
    }

    /// Forgets the studies not in `kept` (pruned from memory; their lines stay in the file).
    mutating func retain(studies kept: Set<String>) {
        entries = entries.filter { kept.contains($0.key) }
    }
}
