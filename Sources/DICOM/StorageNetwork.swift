import CDCMTK
import Foundation

/// Why a DICOM network operation could not run. Each case names the peer or port.
public enum DICOMNetworkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The options are not usable (an empty AE title, port 0, a second receiver in the process).
    case invalidOptions(String)
    /// The listening port could not be opened (in use, permission).
    case cannotListen(port: UInt16, reason: String)

    public var description: String {
        switch self {
        case .invalidOptions(let reason): "invalid DICOM network options: \(reason)"
        case .cannotListen(let port, let reason): "cannot listen on port \(port): \(reason)"
        }
    }
}

/// An application entity title as PS3.5 allows it: 1–16 characters of the default repertoire,
/// no backslash or control characters, not all spaces.
public enum ApplicationEntityTitle {
    /// Nil when `title` is valid, otherwise why not.
    public static func problem(_ title: String) -> String? {
        if title.trimmingCharacters(in: .whitespaces).isEmpty { return "an AE title cannot be empty" }
        if title.utf8.count > 16 { return "AE title \"\(title)\" is longer than 16 characters" }
        if title.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value > 0x7E || $0 == "\\" }) {
            return "AE title \"\(title)\" holds a character other than printable ASCII (or a backslash)"
        }
        return nil
    }
}

/// A storage SCP (C-STORE receiver) writing each instance, once whole and synced, into a folder
/// under its SOP Instance UID (`<uid>.dcm`; `<uid>~1.dcm` when the name is taken). Instances are
/// written into a staging folder on the same file system first, so a watcher of the folder never
/// sees a partial file. One receiver runs per process.
public struct StorageReceiver: Sendable {
    public var aeTitle: String
    public var port: UInt16
    /// Calling AE titles allowed to associate; empty: any.
    public var allowedCallingAETitles: [String]
    public var folder: String
    /// On the folder's file system; leftovers from a stopped receiver are removed at start.
    public var staging: String
    public var maximumAssociations: Int
    /// Below this many free bytes C-STORE is answered "out of resources" (0xA700).
    public var minimumFreeBytes: UInt64
    public var timeoutSeconds: Int

    /// What the receiver has done since it started.
    public struct Counters: Sendable, Equatable, Codable {
        public var associationsAccepted: UInt64 = 0
        public var associationsRefused: UInt64 = 0
        public var associationsActive: UInt64 = 0
        public var instancesReceived: UInt64 = 0
        public var instancesFailed: UInt64 = 0
        public var bytesReceived: UInt64 = 0
        public var echoes: UInt64 = 0

        public init() {}
    }

    public init(aeTitle: String, port: UInt16, allowedCallingAETitles: [String], folder: String, staging: String,
                maximumAssociations: Int = 4, minimumFreeBytes: UInt64 = 1 << 30, timeoutSeconds: Int = 60) {
        self.aeTitle = aeTitle
        self.port = port
        self.allowedCallingAETitles = allowedCallingAETitles
        self.folder = folder
        self.staging = staging
        self.maximumAssociations = maximumAssociations
        self.minimumFreeBytes = minimumFreeBytes
        self.timeoutSeconds = timeoutSeconds
    }

    /// Serves associations until `stop()`; blocks the calling thread. `events` receives what
    /// happens (associations accepted, refused, ended; instances that could not be stored),
    /// from the receiver's worker threads.
    public func run(events: @escaping @Sendable (_ isError: Bool, _ message: String) -> Void) throws(DICOMNetworkError) {
        do {
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        } catch {
            throw .invalidOptions("cannot create the staging folder \(staging): \(error.localizedDescription)")
        }
        // Parts of instances whose association ended before they were whole (the sender was told
        // nothing was stored and sends them again).
        for name in (try? FileManager.default.contentsOfDirectory(atPath: staging)) ?? [] where name.hasSuffix(".part") {
            unlink(staging + "/" + name)
        }
        let sink = Unmanaged.passRetained(EventSink(events))
        defer { sink.release() }
        let (status, reason): (mrs_status, String) = withMessageBuffer { message, size in withCStrings(allowedCallingAETitles) { allowed in
            aeTitle.withCString { ae in
                folder.withCString { folder in
                    staging.withCString { staging in
                        var options = mrs_receiver_options(
                            ae_title: ae, port: port, allowed_calling_ae_titles: allowed.baseAddress, allowed_calling_count: allowed.count,
                            folder: folder, staging: staging, maximum_associations: UInt16(clamping: maximumAssociations),
                            minimum_free_bytes: minimumFreeBytes, timeout_seconds: UInt32(clamping: timeoutSeconds),
                            on_event: { context, isError, text in
                                guard let context, let text else { return }
                                Unmanaged<EventSink>.fromOpaque(context).takeUnretainedValue().handler(isError != 0, String(cString: text))
                            },
                            event_context: sink.toOpaque()
                        )
                        return mrs_receiver_run(&options, message, size)
                    }
                }
            }
        } }
        switch status {
        case MRS_OK: return
        case MRS_UNREADABLE: throw .cannotListen(port: port, reason: reason)
        default: throw .invalidOptions(reason)
        }
    }

    /// Asks the running receiver to return from `run` once its associations in progress end.
    public static func stop() {
        mrs_receiver_stop()
    }

    /// The running receiver's counters.
    public static var counters: Counters {
        var raw = mrs_receiver_counters()
        mrs_receiver_counters_get(&raw)
        var counters = Counters()
        counters.associationsAccepted = raw.associations_accepted
        counters.associationsRefused = raw.associations_refused
        counters.associationsActive = raw.associations_active
        counters.instancesReceived = raw.instances_received
        counters.instancesFailed = raw.instances_failed
        counters.bytesReceived = raw.bytes_received
        counters.echoes = raw.echoes
        return counters
    }

    private final class EventSink: Sendable {
        let handler: @Sendable (Bool, String) -> Void
        init(_ handler: @escaping @Sendable (Bool, String) -> Void) { self.handler = handler }
    }
}

/// A DICOM destination reached as a storage SCU (C-STORE sender).
public struct StorageDestination: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var calledAETitle: String
    public var callingAETitle: String
    public var timeoutSeconds: Int

    public init(host: String, port: UInt16, calledAETitle: String, callingAETitle: String, timeoutSeconds: Int = 60) {
        self.host = host
        self.port = port
        self.calledAETitle = calledAETitle
        self.callingAETitle = callingAETitle
        self.timeoutSeconds = timeoutSeconds
    }

    public var description: String { "\(calledAETitle)@\(host):\(port)" }

    /// What became of one file.
    public enum Outcome: Sendable, Equatable, CustomStringConvertible {
        /// The destination answered with a success or warning status (PS3.4 B.2.3): it holds the instance.
        case stored(status: UInt16)
        /// The destination answered with a failure status.
        case refused(status: UInt16)
        /// Not sent: the association failed or ended first.
        case notSent
        /// The file cannot be sent: unreadable, not DICOM or without SOP UIDs.
        case unreadable

        public var isStored: Bool {
            if case .stored = self { return true }
            return false
        }

        public var description: String {
            switch self {
            case .stored(let status): status == 0 ? "stored" : "stored with warning 0x" + String(status, radix: 16, uppercase: true)
            case .refused(let status): "refused with status 0x" + String(status, radix: 16, uppercase: true)
            case .notSent: "not sent"
            case .unreadable: "unreadable, not DICOM, or without SOP UIDs"
            }
        }
    }

    /// The outcome of a send: every file's, and the association's error if it failed.
    public struct Report: Sendable {
        public var outcomes: [Outcome]
        public var error: String?
    }

    /// Sends the files (blocking), over as many associations as their SOP classes need, each in
    /// the transfer syntax it is stored in where the destination accepts that.
    public func send(_ paths: [String]) -> Report {
        var statuses = [UInt16](repeating: UInt16(MRS_SEND_NOT_SENT), count: paths.count)
        let (status, message): (mrs_status, String) = withMessageBuffer { message, size in withCStrings(paths) { files in
            host.withCString { host in
                calledAETitle.withCString { called in
                    callingAETitle.withCString { calling in
                        var options = mrs_send_options(host: host, port: port, called_ae_title: called, calling_ae_title: calling,
                                                       timeout_seconds: UInt32(clamping: timeoutSeconds))
                        return statuses.withUnsafeMutableBufferPointer {
                            mrs_send_files(&options, files.baseAddress, files.count, $0.baseAddress, message, size)
                        }
                    }
                }
            }
        } }
        let outcomes = statuses.map { status -> Outcome in
            switch UInt32(status) {
            case MRS_SEND_NOT_SENT: .notSent
            case MRS_SEND_UNREADABLE: .unreadable
            // Success 0000, warnings B000, B006, B007 (PS3.4 Table B.2-1): the instance is stored.
            case 0x0000, 0xB000...0xBFFF: .stored(status: status)
            default: .refused(status: status)
            }
        }
        return Report(outcomes: outcomes, error: status == MRS_OK ? nil : message)
    }
}

/// Calls `body` with a C array of the strings (valid only inside it).
func withCStrings<Result>(_ strings: [String], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> Result) -> Result {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    return copies.map { UnsafePointer($0) }.withUnsafeBufferPointer(body)
}
