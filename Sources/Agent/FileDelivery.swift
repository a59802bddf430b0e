#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DICOM
import Foundation

/// Puts files where a rule says, through the journal, so that a crash at any instant leaves every
/// file in exactly one complete place (or, for a copy, in its source and at most one destination).
///
/// A move on one file system is a hard link to the destination followed by the source's removal;
/// across file systems (or where links are refused) it is a copy to a hidden temporary beside the
/// destination, fsync, byte-for-byte verification, link into place, then the source's removal.
/// The destination appears only by `link`, which never replaces an existing file.
public struct FileDelivery: Sendable {
    public let journal: Journal
    /// Called after each step that changes what is on disk, with the step's name: tests stop the
    /// world there (a kill -9 at every step) and check what recovery makes of it. Nil in service.
    var afterStep: (@Sendable (String) -> Void)?

    public init(journal: Journal) {
        self.journal = journal
    }

    /// What became of one file.
    public enum Outcome: Sendable, Equatable {
        /// Written to this path.
        case delivered(String)
        /// The same bytes were already at this path; a move removed the source.
        case alreadyThere(String)
        /// A different file holds the destination and the policy keeps it; nothing was written.
        case collision(existing: String)
    }

    /// Delivers `source` to `destination` by `mode`, applying `rewrite` to the delivered copy.
    ///
    /// With a `batch`, a move's last two steps — syncing the source's folder after its removal and
    /// marking the intent done — wait for `commit(_:)`, so that a series costs one fsync per
    /// folder instead of one per file. Until then the intent stays open, and recovery after a crash
    /// finishes it from what is on disk.
    ///
    /// - Parameter expected: the source's stamp when it was read. A move whose source changed
    ///   meanwhile (a writer came back while it was being copied to another file system) keeps
    ///   the source, withdraws the copy, and throws: the file is read again once it is whole.
    public func deliver(
        _ source: String, to destination: String, mode: FolderRule.Action.Delivery,
        rewrite: AtomicRewrite? = nil, duplicates: DuplicatePolicy, batch: DeliveryBatch? = nil,
        expected: FileSystem.Stamp? = nil
    ) throws(DeliveryError) -> Outcome {
        // Already in its place (a relabel that keeps the layout). The same-inode rule below would
        // remove the source, which here is the only name of the file.
        if FileSystem.isSameEntry(source, destination) {
            if let rewrite { try rewriteInPlace(source, rewrite: rewrite) }
            return .alreadyThere(destination)
        }
        let directory = (destination as NSString).deletingLastPathComponent
        if mode == .move, access((source as NSString).deletingLastPathComponent, W_OK) != 0 {
            throw .fileSystem(FileSystemError(path: source, operation: "move", reason: "its folder is not writable, so the file cannot be moved out of it"))
        }
        do {
            try FileSystem.createDirectory(directory)
        } catch {
            throw .fileSystem(error)
        }
        var candidate = destination
        var attempt = 0
        while true {
            if FileSystem.exists(candidate) {
                let identical = rewrite == nil && ((try? FileSystem.sameContent(source, candidate)) ?? false)
                // The same inode is the same file (a move's link that a crash left behind), whatever the policy.
                let sameFile = FileSystem.stamp(source).map { a in FileSystem.stamp(candidate).map { $0.inode == a.inode && $0.device == a.device } ?? false } ?? false
                if sameFile || (identical && duplicates != .skip) {
                    if mode == .move { try remove(source) }
                    return .alreadyThere(candidate)
                }
                guard duplicates == .keepBoth else { return .collision(existing: candidate) }
                attempt += 1
                candidate = Self.numbered(destination, attempt)
                continue
            }
            if try place(source, at: candidate, mode: mode, rewrite: rewrite, batch: batch, expected: expected) { return .delivered(candidate) }
            // Someone else created the destination between the check and the link: look again.
        }
    }

    /// Rewrites `path` in place under a journal intent.
    public func rewriteInPlace(_ path: String, rewrite: AtomicRewrite) throws(DeliveryError) {
        let intent: Journal.Intent
        do {
            intent = try journal.begin(.rewrite, source: path)
        } catch {
            throw .fileSystem(error)
        }
        afterStep?("intent recorded")
        do {
            try rewrite.apply(to: path)
            afterStep?("rewritten in place")
        } catch {
            try? journal.finish(intent)
            throw .dicom(error)
        }
        do {
            try journal.finish(intent)
        } catch {
            throw .fileSystem(error)
        }
    }

    /// One attempt at the destination; false when it appeared meanwhile (nothing changed then).
    private func place(_ source: String, at destination: String, mode: FolderRule.Action.Delivery, rewrite: AtomicRewrite?,
                       batch: DeliveryBatch?, expected: FileSystem.Stamp?) throws(DeliveryError) -> Bool {
        let temporary = AtomicRewrite.temporaryPath(for: destination)
        let intent: Journal.Intent
        // A batch of plain moves commits as a group: intents and links first, one journal fsync
        // and one fsync per destination folder, then the sources' removal (`commit(_:)`).
        let grouped = batch != nil && mode == .move && rewrite == nil
        do {
            intent = try journal.begin(mode == .move ? .move : .copy, source: source, destination: destination, temporary: temporary,
                                       rewritten: rewrite != nil, sync: !grouped)
        } catch {
            throw .fileSystem(error)
        }
        afterStep?("intent recorded")
        var linked = false
        if mode == .move, rewrite == nil {
            if link(source, destination) == 0 {
                linked = true
                afterStep?("destination linked")
                if let batch, grouped {
                    batch.linked.append((intent, source, (destination as NSString).deletingLastPathComponent))
                    return true
                }
            } else if errno == EEXIST {
                try? journal.finish(intent)
                return false
            } else if ![EXDEV, EPERM, ENOTSUP, EMLINK, EOPNOTSUPP].contains(errno) {
                let error = FileSystemError(path: destination, operation: "link from \(source)", code: errno)
                try? journal.finish(intent)
                throw .fileSystem(error)
            }
        }
        do {
            if grouped { try journal.sync() }  // the copy below is not part of the group
            if !linked {
                try FileSystem.copyVerified(source, to: temporary)
                afterStep?("temporary copied")
                if let rewrite {
                    do {
                        try rewrite.apply(to: temporary)
                    } catch {
                        try? FileSystem.remove(temporary)
                        try? journal.finish(intent)
                        throw DeliveryError.dicom(error)
                    }
                    afterStep?("temporary rewritten")
                }
                if link(temporary, destination) != 0 {
                    let code = errno
                    try FileSystem.remove(temporary)
                    try? journal.finish(intent)
                    if code == EEXIST { return false }
                    throw DeliveryError.fileSystem(FileSystemError(path: destination, operation: "link", code: code))
                }
                // The destination is durable (linked and its folder synced below); the temporary's
                // name may come back after a crash and recovery removes it.
                afterStep?("destination linked")
                try FileSystem.remove(temporary, sync: false)
                afterStep?("temporary removed")
                try FileSystem.syncDirectory((destination as NSString).deletingLastPathComponent)
            } else {
                try FileSystem.syncDirectory((destination as NSString).deletingLastPathComponent)
            }
            if mode == .move, !linked, let expected, FileSystem.stamp(source) != expected {
                // Written to since it was read: the copy may lack what came after. The source is
                // still there, newer, so the copy goes and the file is read again later.
                let withdrawn = try Self.withdraw(destination, keeping: source)
                try journal.finish(intent)
                throw DeliveryError.fileSystem(FileSystemError(
                    path: source, operation: "move to \(destination)",
                    reason: "the file changed while it was being copied (a writer is still at it); " + withdrawn))
            }
            if mode == .move {
                do {
                    // Synced now, or with the rest of the batch before its intents are marked done.
                    try FileSystem.remove(source, sync: batch == nil)
                    afterStep?("source removed")
                } catch where error.code == ENOENT {
                    // Someone else took the source away meanwhile: the verified destination is now
                    // the file's only copy, and it stays.
                } catch {
                    // The source cannot go (a read-only drop folder): withdraw the new copy, so that
                    // the file stays in one place, and report why.
                    let withdrawn = try Self.withdraw(destination, keeping: source)
                    try journal.finish(intent)
                    throw DeliveryError.fileSystem(FileSystemError(
                        path: source, operation: "remove after copying to \(destination)", reason: error.reason + "; " + withdrawn))
                }
            }
            if let batch, mode == .move {
                batch.removed.append(intent)
                batch.folders.insert((source as NSString).deletingLastPathComponent)
            } else if let batch {
                // A copy's source stays, so only its audit line tells a restart that it was
                // delivered: the intent stays open until that line is written (`settle(_:)`).
                batch.copied.append(intent)
            } else {
                try journal.finish(intent)
                afterStep?("intent finished")
            }
        } catch let error as DeliveryError {
            throw error
        } catch let error as FileSystemError {
            // The intent stays open: recovery decides from what is on disk.
            throw .fileSystem(error)
        } catch {
            throw .fileSystem(FileSystemError(path: destination, operation: "deliver", reason: "\(error)"))
        }
        return true
    }

    /// Completes a batch: makes its intents and links durable, removes the linked sources, syncs
    /// the folders they left, then marks every intent done. Returns the sources that could not be
    /// removed: their copies were withdrawn and they stay where they were.
    @discardableResult
    public func commit(_ batch: DeliveryBatch) throws(DeliveryError) -> [(source: String, reason: String)] {
        var failures: [(source: String, reason: String)] = []
        do {
            if !batch.linked.isEmpty {
                try journal.sync()
                for folder in Set(batch.linked.map(\.destinationFolder)) { try FileSystem.syncDirectory(folder) }
            }
            afterStep?("batch synced")
            for (intent, source, _) in batch.linked {
                do {
                    try FileSystem.remove(source, sync: false)
                    afterStep?("batch source removed")
                    batch.removed.append(intent)
                    batch.folders.insert((source as NSString).deletingLastPathComponent)
                } catch where error.code == ENOENT {
                    // Gone meanwhile: the link at the destination is the file now.
                    batch.removed.append(intent)
                } catch {
                    let withdrawn = try intent.destination.map { destination throws(FileSystemError) in
                        try Self.withdraw(destination, keeping: source)
                    } ?? "the file was left in place"
                    try journal.finish(intent)
                    failures.append((source, error.reason + "; " + withdrawn))
                }
            }
            batch.linked.removeAll()
            for folder in batch.folders { try FileSystem.syncDirectory(folder) }
            for intent in batch.removed {
                try journal.finish(intent)
                afterStep?("batch intent finished")
            }
        } catch {
            throw .fileSystem(error)
        }
        batch.folders.removeAll()
        batch.removed.removeAll()
        return failures
    }

    /// Removes a delivered copy whose move cannot finish — but only while its source is still
    /// there: a destination whose source has gone is the only copy, and it is never removed.
    /// Returns what was done, for the error's reason.
    static func withdraw(_ destination: String, keeping source: String) throws(FileSystemError) -> String {
        guard FileSystem.stamp(source) != nil else {
            return "the source is gone, so the copy at \(destination) was kept"
        }
        try FileSystem.remove(destination)
        return "the copy was withdrawn and the file left in place"
    }

    /// Marks a committed batch's copies done; call once their audit lines are written. A crash
    /// before leaves them open, and recovery reports them delivered for the audit.
    public func settle(_ batch: DeliveryBatch) throws(DeliveryError) {
        do {
            for intent in batch.copied {
                try journal.finish(intent)
                afterStep?("copy settled")
            }
        } catch {
            throw .fileSystem(error)
        }
        batch.copied.removeAll()
    }

    private func remove(_ path: String) throws(DeliveryError) {
        do {
            try FileSystem.remove(path)
        } catch {
            throw .fileSystem(error)
        }
    }

    /// `name~N.ext` beside `path`.
    static func numbered(_ path: String, _ number: Int) -> String {
        let url = URL(fileURLWithPath: path)
        let ext = url.pathExtension
        let stem = url.deletingPathExtension().lastPathComponent
        let name = ext.isEmpty ? "\(stem)~\(number)" : "\(stem)~\(number).\(ext)"
        return url.deletingLastPathComponent().appendingPathComponent(name).path
    }
}

/// Moves whose last steps wait for `FileDelivery.commit(_:)`; used by one worker at a time.
public final class DeliveryBatch {
    /// Linked to their destination, intent not yet synced, source still in place.
    fileprivate var linked: [(intent: Journal.Intent, source: String, destinationFolder: String)] = []
    /// Source removed, its folder not yet synced, intent not yet marked done.
    fileprivate var removed: [Journal.Intent] = []
    fileprivate var folders: Set<String> = []
    /// Copies in place, intent not yet marked done (`settle(_:)`).
    fileprivate var copied: [Journal.Intent] = []

    public init() {}

    /// Steps waiting for `commit(_:)` or `settle(_:)`.
    public var count: Int { linked.count + removed.count + copied.count }
}

/// Why a file could not be delivered; the source is always left in place.
public enum DeliveryError: Error, Sendable, CustomStringConvertible {
    case fileSystem(FileSystemError)
    case dicom(DICOMError)

    public var description: String {
        switch self {
        case .fileSystem(let error): error.description
        case .dicom(let error): error.description
        }
    }
}
