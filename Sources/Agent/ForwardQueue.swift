#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Classification
import Foundation

/// One sorted series' files waiting to be sent to a DICOM destination.
public struct ForwardJob: Codable, Sendable, Equatable {
    public var id: String
    public var destination: String
    public var rule: String
    public var study: String
    public var series: String
    public var sequence: SequenceClass
    /// The files the destination has not acknowledged yet.
    public var files: [String]
    /// Sends tried so far.
    public var attempts: Int
    public var due: Date
    public var created: Date
    public var lastError: String?
}

/// The series waiting for each destination, kept as `<state>/forward/<destination>/<id>.json`
/// (written atomically, so a restart resends them). A job leaves the queue only when the
/// destination acknowledged every one of its files, or for the dead-letter folder after its last
/// retry. Forwarding never deletes a sorted file: the destination gets copies.
struct ForwardQueue {
    let root: String
    let deadLetterRoot: String
    /// By destination, oldest first.
    private(set) var jobs: [String: [ForwardJob]] = [:]

    /// Loads the jobs left by an earlier run; a job file that does not decode is reported (and left).
    init(state: StateDirectory) throws(FileSystemError) {
        root = state.forwardQueue
        deadLetterRoot = state.deadLetters
        try FileSystem.createDirectory(root)
    }

    /// Reads the queue folder; returns the job files that could not be read.
    mutating func load() -> [String] {
        var unreadable: [String] = []
        let decoder = JSONDecoder.iso8601
        for destination in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where !destination.hasPrefix(".") {
            let folder = root + "/" + destination
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".json") && !name.hasPrefix(".") {
                guard let data = FileManager.default.contents(atPath: folder + "/" + name),
                      let job = try? decoder.decode(ForwardJob.self, from: data) else {
                    unreadable.append(folder + "/" + name)
                    continue
                }
                jobs[job.destination, default: []].append(job)
            }
        }
        for key in jobs.keys { jobs[key]?.sort { $0.created < $1.created } }
        return unreadable
    }

    /// Records a job on disk, then in memory.
    mutating func enqueue(_ job: ForwardJob) throws(FileSystemError) {
        try write(job)
        jobs[job.destination, default: []].append(job)
    }

    /// The oldest job of the destination that is due.
    func next(for destination: String, at now: Date) -> ForwardJob? {
        jobs[destination]?.first { $0.due <= now }
    }

    /// Whether the job is still queued (a series placed again replaces its jobs, even one in flight).
    func contains(_ job: ForwardJob) -> Bool {
        jobs[job.destination]?.contains { $0.id == job.id } ?? false
    }

    /// Writes the job's new state (fewer files, another attempt, a later due time).
    mutating func update(_ job: ForwardJob) throws(FileSystemError) {
        try write(job)
        if let index = jobs[job.destination]?.firstIndex(where: { $0.id == job.id }) { jobs[job.destination]?[index] = job }
    }

    /// The destination acknowledged every file of the job.
    mutating func complete(_ job: ForwardJob) throws(FileSystemError) {
        try FileSystem.remove(path(of: job))
        jobs[job.destination]?.removeAll { $0.id == job.id }
    }

    /// Gives up on the job after its last retry: `<dead-letter>/<destination>/<id>/` receives the
    /// job (with the reason) and a hard link (else a verified copy) of each file not acknowledged,
    /// so that what the destination lacks is in one place to resend by hand. Returns the folder.
    mutating func deadLetter(_ job: ForwardJob) throws(FileSystemError) -> String {
        let folder = deadLetterRoot + "/" + Self.safe(job.destination) + "/" + Self.safe(job.id)
        try FileSystem.createDirectory(folder)
        var taken = Set<String>()
        for file in job.files where FileSystem.exists(file) {
            var name = (file as NSString).lastPathComponent
            var number = 0
            while !taken.insert(name).inserted {
                number += 1
                name = FileDelivery.numbered((file as NSString).lastPathComponent, number)
            }
            let target = folder + "/" + name
            if FileSystem.exists(target) { continue }
            if link(file, target) != 0 { try FileSystem.copyVerified(file, to: target) }
        }
        try FileSystem.writeAtomically(Self.encoded(job), to: folder + "/job.json", mode: 0o640)
        try complete(job)
        return folder
    }

    /// Every job waiting, of every destination.
    var all: [ForwardJob] { jobs.values.flatMap { $0 } }

    /// Jobs in the dead-letter folder of a destination.
    func deadLetterCount(_ destination: String) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: deadLetterRoot + "/" + Self.safe(destination))) ?? []).filter { !$0.hasPrefix(".") }.count
    }

    private func path(of job: ForwardJob) -> String {
        root + "/" + Self.safe(job.destination) + "/" + Self.safe(job.id) + ".json"
    }

    private func write(_ job: ForwardJob) throws(FileSystemError) {
        try FileSystem.createDirectory(root + "/" + Self.safe(job.destination))
        try FileSystem.writeAtomically(Self.encoded(job), to: path(of: job), mode: 0o640)
    }

    static func encoded(_ job: ForwardJob) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return (try? encoder.encode(job)) ?? Data()
    }

    /// Destination names are checked by the configuration; ids are made here. Both stay names.
    static func safe(_ name: String) -> String {
        String(PathTemplate.safeComponent(PathTemplate.sanitise(name)).prefix(120))
    }
}
