import Classification
import DICOM
import Foundation

/// Identifies a series within its study.
public struct SeriesKey: Hashable, Sendable, CustomStringConvertible {
    public var study: String
    public var series: String

    public var description: String { series }
}

/// Groups arriving files by StudyInstanceUID/SeriesInstanceUID and tells when a series has gone
/// quiet. A value type owned by the agent: the agent decides what to do with quiescent series.
public struct SeriesTracker: Sendable {
    /// A series still receiving files, or waiting for its quiet period to pass.
    public struct Pending: Sendable {
        public var key: SeriesKey
        public var rule: String
        public var files: [String: TrackedFile] = [:]
        /// The last time a file of the series arrived or changed.
        public var lastChange: Date
    }

    public private(set) var pending: [SeriesKey: Pending] = [:]
    /// Which pending series each file belongs to.
    private var owner: [String: SeriesKey] = [:]

    public init() {}

    /// Whether `path` is already tracked with this size and time (an event repeated by a rescan).
    public func isTracked(_ path: String, stamp: FileSystem.Stamp) -> Bool {
        guard let key = owner[path] else { return false }
        return pending[key]?.files[path]?.stamp == stamp
    }

    /// Adds or refreshes a file; the series' quiet period starts again. Returns whether the file
    /// is new to the tracker (false when it refreshes one already pending).
    @discardableResult
    public mutating func add(_ file: TrackedFile, rule: String, at now: Date) -> Bool {
        guard let header = file.headers.first else { return false }
        let key = SeriesKey(study: header.studyInstanceUID, series: header.seriesInstanceUID)
        let isNew = owner[file.path] == nil
        if let previous = owner[file.path], previous != key { remove(file.path) }
        owner[file.path] = key
        pending[key, default: Pending(key: key, rule: rule, lastChange: now)].files[file.path] = file
        pending[key]?.lastChange = now
        return isNew
    }

    /// Forgets a file (gone, or moved into another series).
    public mutating func remove(_ path: String) {
        guard let key = owner.removeValue(forKey: path) else { return }
        pending[key]?.files[path] = nil
        if pending[key]?.files.isEmpty == true { pending[key] = nil }
    }

    /// The series with no change for their quiet period, oldest first.
    public func quiescent(at now: Date, quietSeconds: (String) -> Double) -> [SeriesKey] {
        pending.values
            .filter { now.timeIntervalSince($0.lastChange) >= quietSeconds($0.rule) }
            .sorted { $0.lastChange < $1.lastChange }
            .map(\.key)
    }

    /// Removes a series to hand it to a worker.
    public mutating func take(_ key: SeriesKey) -> Pending? {
        guard let series = pending.removeValue(forKey: key) else { return nil }
        for path in series.files.keys { owner[path] = nil }
        return series
    }

    /// Series whose rule no longer exists (after a reload) are dropped; their files stay put.
    public mutating func retain(rules: Set<String>) -> [Pending] {
        let dropped = pending.values.filter { !rules.contains($0.rule) }
        for series in dropped { _ = take(series.key) }
        return dropped
    }

    /// Whether a study still has series arriving or waiting.
    public func hasPending(study: String) -> Bool {
        pending.keys.contains { $0.study == study }
    }
}
