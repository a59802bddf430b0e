import Classification
import DICOM
import Dispatch
import Foundation
import Logging

/// Arrivals: what the watcher reports, read in the background, grouped into pending series.
extension WatchAgent {
    // MARK: Arrivals

    func observe(_ path: String, rule: String) {
        guard !rule.isEmpty, !inFlight.values.contains(where: { $0.contains(path) }), let stamp = FileSystem.stamp(path) else { return }
        if handledFiles[path] == stamp || tracker.isTracked(path, stamp: stamp) { return }
        if let known = unreadable[path], known.stamp == stamp { return }
        if reading[path] == stamp { return }
        reading[path] = stamp
        readQueue.append((path, rule, stamp))
        startReads()
    }

    /// Reads headers on worker tasks, a few at a time: parsing is the costly part of arrival.
    func startReads() {
        while readsInFlight < max(2, configuration.workerThreads * 2), readQueueHead < readQueue.count {
            let (path, rule, stamp) = readQueue[readQueueHead]
            readQueueHead += 1
            // A queue of thousands (a flood, a rescan) is consumed from the front in O(1).
            if readQueueHead == readQueue.count || readQueueHead > 4096 {
                readQueue.removeFirst(readQueueHead)
                readQueueHead = 0
            }
            readsInFlight += 1
            let continuation = continuation, ceiling = configuration.maximumFrameBytes
            Self.work.async {
                // The whole file, pixel data included, must parse: the header alone arrives first,
                // so a file still being written can look whole to a header-only read. Large values
                // are skipped, not loaded, so this costs about what a header read does.
                let result = Result { () throws(DICOMError) -> [ImageHeader] in
                    try DICOMFile.open(path, headerOnly: false, maximumDecodedFrameBytes: ceiling).imageHeaders()
                }
                continuation.yield(.read(path, rule: rule, stamp: stamp, result))
            }
        }
    }

    /// Gives a file or folder whose name is not UTF-8 (an old archive's Latin-1, a sender's
    /// bytes) a name the agent can write — each non-ASCII byte and `%` as `%XX` — in the same
    /// folder, never replacing anything, audits the rename, and handles the file as any other.
    func rename(misnamed name: [UInt8], in folder: String, rule: String) {
        let escaped = name.map { $0 < 0x80 && $0 != 0x25 ? String(UnicodeScalar($0)) : String(format: "%%%02X", $0) }.joined()
        let original = Array(folder.utf8) + [0x2F] + name + [0]
        var info = stat()
        guard lstat(original.map { CChar(bitPattern: $0) }, &info) == 0 else { return }
        let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
        guard isDirectory || (info.st_mode & S_IFMT) == S_IFREG else { return }
        var record = AuditRecord(time: Date(), rule: rule, file: folder + "/" + escaped, action: "rename",
                                 reason: "the file name is not valid UTF-8")
        for attempt in 0..<100 {
            let target = attempt == 0 ? folder + "/" + escaped : FileDelivery.numbered(folder + "/" + escaped, attempt)
            let source = original.map { CChar(bitPattern: $0) }
            // A file gets its new name by link, which never replaces; a folder by rename once the
            // name is seen free.
            let done: Bool
            if isDirectory {
                done = !FileSystem.exists(target) && Glibc.rename(source, target) == 0
            } else if link(source, target) == 0 {
                done = unlink(source) == 0 || { _ = unlink(target); return false }()
            } else {
                done = false
                if errno != EEXIST { break }
            }
            guard done else { continue }
            try? FileSystem.syncDirectory(folder)
            record.destination = target
            try? audit.append(record)
            logger.warning("renamed a name that is not UTF-8", metadata: ["folder": "\(folder)", "name": "\(target)"])
            // A new folder is reported by the watcher's move event; a file's link is not.
            if !isDirectory { observe(target, rule: rule) }
            return
        }
        record.action = "error"
        record.reason = "the file name is not valid UTF-8 and it cannot be renamed: \(String(cString: strerror(errno)))"
        counters.errors += 1
        try? audit.append(record)
        logger.error("cannot rename a name that is not UTF-8", metadata: ["folder": "\(folder)", "name": "\(escaped)"])
    }

    func ingest(_ path: String, rule: String, stamp: FileSystem.Stamp, _ result: Result<[ImageHeader], DICOMError>) {
        readsInFlight -= 1
        if reading[path] == stamp { reading[path] = nil }
        defer {
            startReads()
            // The last read of a burst: series held back for it may start now rather than at the tick.
            if readsInFlight == 0, readQueueHead == readQueue.count { dispatchQuiescent(now: Date()) }
        }
        switch result {
        case .success(let headers) where !headers.isEmpty:
            unreadable[path] = nil
            // A file read again (it changed while its series waited) is still one file.
            if tracker.add(TrackedFile(path: path, stamp: stamp, headers: headers), rule: rule, at: Date()) { counters.filesSeen += 1 }
            studies[headers[0].studyInstanceUID, default: StudyState(rule: rule, lastActivity: Date())].lastActivity = Date()
        case .success:
            unreadable[path] = Unreadable(rule: rule, stamp: stamp, since: Date(), reason: "no image in the file", incomplete: false)
        case .failure(let error):
            // Perhaps still being written: quarantined only if it stays unchanged and unreadable.
            let incomplete: Bool = switch error {
            case .truncated: true
            default: stamp.size == 0
            }
            // The header often arrives whole before the pixel data: it names the study the file will join.
            let study = incomplete ? (try? ImageHeader.read(from: path).first?.studyInstanceUID) ?? nil : nil
            unreadable[path] = Unreadable(rule: rule, stamp: stamp, since: Date(), reason: error.reason, incomplete: incomplete, study: study)
        }
    }

    func rescan() {
        let folders = watchedFolders()
        for event in FolderWatcher.scan(folders) {
            switch event {
            case .file(let path, let rule): observe(path, rule: configuration.rules[rule].name)
            case .misnamed(let folder, let name, let rule): rename(misnamed: name, in: folder, rule: configuration.rules[rule].name)
            case .overflow: break
            }
        }
    }

    func watchedFolders() -> [WatchedFolder] {
        configuration.rules.enumerated().flatMap { index, rule in
            rule.watch.map { WatchedFolder(path: $0, recursive: rule.recursive, rule: index) }
        }
    }

    func startWatching() throws(FileSystemError) {
        watcher?.stop()
        let continuation = continuation
        watcher = try FolderWatcher(folders: watchedFolders()) { event in
            switch event {
            case .file(let path, let rule): continuation.yield(.file(path, rule: rule))
            case .misnamed(let folder, let name, let rule): continuation.yield(.misnamed(folder: folder, name: name, rule: rule))
            case .overflow: continuation.yield(.overflow)
            }
        }
    }
}
