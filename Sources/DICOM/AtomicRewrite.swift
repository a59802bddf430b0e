#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CDCMTK

/// Rewrites attributes of a DICOM file in place without ever leaving it half-written.
///
/// The new file is written beside the original under a hidden temporary name (same
/// directory, so the same file system), in the same transfer syntax with the same meta
/// header, given the original's mode, fsync'd, then renamed over the original, and the
/// directory is fsync'd. A crash before the rename leaves the original untouched; a crash
/// after it leaves the new file complete.
///
/// The replaced values are kept in the file itself, the standard way: an item of the
/// Original Attributes Sequence (0400,0561) whose Modified Attributes Sequence (0400,0550)
/// holds the previous values, with the modification time, ModifyingSystem "mrsort" and
/// reason "CORRECT".
public struct AtomicRewrite: Sendable {
    /// Prefix of the temporary files, which watchers must ignore (they are also hidden).
    public static let temporaryPrefix = ".mrsort-tmp-"

    /// The new values, by tag. Tags must be standard string attributes (SeriesDescription …).
    public var changes: [Tag: String]
    /// Whether to record the previous values in the Original Attributes Sequence.
    public var recordsOriginalValues: Bool

    public init(changes: [Tag: String], recordsOriginalValues: Bool = true) {
        self.changes = changes
        self.recordsOriginalValues = recordsOriginalValues
    }

    /// Writes and renames in one step.
    public func apply(to path: String) throws(DICOMError) {
        try prepare(path).commit()
    }

    /// Writes the rewritten file under a temporary name and syncs it; the original is untouched
    /// until `commit()`.
    public func prepare(_ path: String) throws(DICOMError) -> PreparedRewrite {
        let file = try DICOMFile.open(path, headerOnly: false)
        var original = stat()
        guard stat(path, &original) == 0 else {
            throw DICOMError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        let dataset = file.dataset
        if recordsOriginalValues {
            try recordOriginals(in: dataset, path: path)
        }
        for (tag, value) in changes.sorted(by: { ($0.key.group, $0.key.element) < ($1.key.group, $1.key.element) }) {
            try put(tag, value, in: dataset, path: path)
        }
        let temporary = Self.temporaryPath(for: path)
        let (status, message) = withMessageBuffer { mrs_save(file.handle, temporary, $0, $1) }
        guard status == MRS_OK else {
            unlink(temporary)
            throw DICOMError.writeFailed(path: path, reason: message)
        }
        do {
            try Self.syncFile(temporary, mode: original.st_mode & 0o7777, owner: original.st_uid, group: original.st_gid)
        } catch {
            unlink(temporary)
            throw DICOMError.writeFailed(path: path, reason: error.reason)
        }
        return PreparedRewrite(original: path, temporary: temporary)
    }

    private func recordOriginals(in dataset: DICOMItem, path: String) throws(DICOMError) {
        guard let history = mrs_item_append_sequence_item(dataset.pointer, Tag.originalAttributesSequence.group,
                                                          Tag.originalAttributesSequence.element),
              let modified = mrs_item_append_sequence_item(history, Tag.modifiedAttributesSequence.group,
                                                           Tag.modifiedAttributesSequence.element) else {
            throw DICOMError.writeFailed(path: path, reason: "cannot create the Original Attributes Sequence")
        }
        let historyItem = DICOMItem(pointer: history, file: dataset.file)
        let modifiedItem = DICOMItem(pointer: modified, file: dataset.file)
        for tag in changes.keys {
            try put(tag, dataset.string(tag) ?? "", in: modifiedItem, path: path)
        }
        try put(.attributeModificationDateTime, Self.timestamp(), in: historyItem, path: path)
        try put(.modifyingSystem, "mrsort", in: historyItem, path: path)
        try put(.sourceOfPreviousValues, "", in: historyItem, path: path)
        try put(.reasonForTheAttributeModification, "CORRECT", in: historyItem, path: path)
    }

    private func put(_ tag: Tag, _ value: String, in item: DICOMItem, path: String) throws(DICOMError) {
        let (status, message) = withMessageBuffer { buffer, size in
            mrs_item_put_string(item.pointer, tag.group, tag.element, value, buffer, size)
        }
        guard status == MRS_OK else {
            throw DICOMError.writeFailed(path: path, reason: "cannot set \(tag) to \"\(value)\": \(message)")
        }
    }

    /// A hidden name beside `path` (same directory, so the same file system) that watchers ignore.
    public static func temporaryPath(for path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        return directory + temporaryPrefix + name + "." + String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    /// The modification time as a DICOM DT in UTC.
    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return pad(parts.tm_year + 1900, 4) + pad(parts.tm_mon + 1, 2) + pad(parts.tm_mday, 2)
            + pad(parts.tm_hour, 2) + pad(parts.tm_min, 2) + pad(parts.tm_sec, 2) + "+0000"
    }

    /// Gives the file the original's mode and owner (where permitted) and flushes it to disk.
    static func syncFile(_ path: String, mode: mode_t, owner: uid_t, group: gid_t) throws(SystemCallError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError(call: "open", errno: errno) }
        defer { close(fd) }
        guard fchmod(fd, mode) == 0 else { throw SystemCallError(call: "fchmod", errno: errno) }
        // Changing the owner needs privileges; a non-root agent keeps its own.
        _ = fchown(fd, owner, group)
        guard fsync(fd) == 0 else { throw SystemCallError(call: "fsync", errno: errno) }
    }

    /// Flushes a directory entry change (a rename) to disk.
    static func syncDirectory(of path: String) throws(SystemCallError) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError(call: "open directory", errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw SystemCallError(call: "fsync directory", errno: errno) }
    }
}

/// A rewritten file waiting, synced, under its temporary name.
public struct PreparedRewrite: Sendable {
    public let original: String
    public let temporary: String

    /// Renames the temporary file over the original and syncs the directory.
    public func commit() throws(DICOMError) {
        guard rename(temporary, original) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw DICOMError.writeFailed(path: original, reason: "rename: \(reason)")
        }
        do {
            try AtomicRewrite.syncDirectory(of: original)
        } catch {
            throw DICOMError.writeFailed(path: original, reason: error.reason)
        }
    }

    /// Removes the temporary file and leaves the original as it was.
    public func abandon() {
        unlink(temporary)
    }
}

/// A failed system call with its errno.
struct SystemCallError: Error {
    let call: String
    let errno: Int32

    var reason: String { "\(call): \(String(cString: strerror(errno)))" }
}
