import Foundation
import Testing
@testable import Agent

@Suite("Trigger ledger: once per study revision, retries by policy, refire on new series")
struct TriggerLedgerTests {
    static func policy(retries: Int = 0, refire: StudyTrigger.Refire = .never) -> StudyTrigger {
        StudyTrigger(name: "lesions", requires: [.flair3D], quietSeconds: 1, command: ["/bin/true"], inbox: nil,
                     retries: retries, retrySeconds: 60, refire: refire)
    }

    @Test("Failures start the trigger again as often as its retries allow, each after retry_seconds")
    func retries() throws {
        var ledger = TriggerLedger()
        let policy = Self.policy(retries: 2)
        let start = Date(timeIntervalSince1970: 1_000_000)
        for attempt in 1...2 {
            let fired = ledger.fire(study: "s", trigger: "lesions")
            #expect(fired == (attempt, 1))
            let due = ledger.fail(study: "s", policy: policy, attempt: attempt, revision: 1, at: start)
            #expect(due == start.addingTimeInterval(60))
            #expect(ledger.entry(study: "s", trigger: "lesions").state == .retryAt(start.addingTimeInterval(60)))
        }
        let third = ledger.fire(study: "s", trigger: "lesions")
        #expect(third == (3, 1))
        let spent = ledger.fail(study: "s", policy: policy, attempt: 3, revision: 1, at: start)
        #expect(spent == nil, "retries spent")
        #expect(ledger.entry(study: "s", trigger: "lesions").state == .fired)
    }

    @Test("Without retries a failure stays fired; a failure of an older attempt changes nothing")
    func noRetriesAndStaleFailures() {
        var ledger = TriggerLedger()
        _ = ledger.fire(study: "s", trigger: "lesions")
        let due = ledger.fail(study: "s", policy: Self.policy(), attempt: 1, revision: 1, at: Date())
        #expect(due == nil)
        #expect(ledger.entry(study: "s", trigger: "lesions").state == .fired)
        var retrying = TriggerLedger()
        _ = retrying.fire(study: "s", trigger: "lesions")
        _ = retrying.fire(study: "s", trigger: "lesions")
        let stale = retrying.fail(study: "s", policy: Self.policy(retries: 5), attempt: 1, revision: 1, at: Date())
        #expect(stale == nil)
    }

    @Test("A late series re-opens the trigger only with refire: on-new-series, as a new revision")
    func refire() {
        var ledger = TriggerLedger()
        _ = ledger.fire(study: "s", trigger: "lesions")
        let kept = ledger.lateSeries(study: "s", policy: Self.policy())
        #expect(!kept)
        #expect(ledger.fired(study: "s") == ["lesions"])
        let reopened = ledger.lateSeries(study: "s", policy: Self.policy(refire: .onNewSeries))
        #expect(reopened)
        #expect(ledger.entry(study: "s", trigger: "lesions").state == .waiting)
        #expect(ledger.fired(study: "s").isEmpty)
        let refired = ledger.fire(study: "s", trigger: "lesions")
        #expect(refired == (1, 2))
    }

    @Test("Replaying triggers.jsonl restores fired triggers, due retries and re-opened revisions")
    func replay() {
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        func line(_ study: String, attempt: Int = 1, revision: Int = 1, pid: Int32? = nil, exit: Int32? = nil, error: String? = nil,
                  refire: Bool? = nil) -> TriggerRecord {
            TriggerRecord(time: t0, study: study, trigger: "lesions", rule: "mri", exitStatus: exit, error: error, pid: pid,
                          attempt: attempt, revision: revision, refire: refire)
        }
        let records = [
            // a: fired, ran, succeeded.
            line("a"), line("a", pid: 10), line("a", pid: 10, exit: 0),
            // b: fired, exited 1: due again.
            line("b"), line("b", pid: 11), line("b", pid: 11, exit: 1),
            // c: interrupted by a stop of the agent: due again.
            line("c"), line("c", pid: 12), line("c", pid: 12, error: "interrupted: the agent stopped"),
            // d: fired, then a late series that re-opened it.
            line("d"), line("d", error: "late series 1.2.3 arrived", refire: true),
            // e: an old file's fired line without attempt or revision.
            TriggerRecord(time: t0, study: "e", trigger: "lesions", rule: "mri"),
        ]
        var ledger = TriggerLedger()
        ledger.replay(records) { _, _ in Self.policy(retries: 1) }
        #expect(ledger.entry(study: "a", trigger: "lesions").state == .fired)
        #expect(ledger.entry(study: "b", trigger: "lesions").state == .retryAt(t0.addingTimeInterval(60)))
        #expect(ledger.entry(study: "c", trigger: "lesions").state == .retryAt(t0.addingTimeInterval(60)))
        #expect(ledger.entry(study: "d", trigger: "lesions") == .init(state: .waiting, attempt: 0, revision: 2))
        #expect(ledger.entry(study: "e", trigger: "lesions") == .init(state: .fired, attempt: 1, revision: 1))
        var gone = TriggerLedger()
        gone.replay(records) { _, _ in nil }
        #expect(gone.entry(study: "b", trigger: "lesions").state == .fired, "a trigger no longer configured is not retried")
    }
}
