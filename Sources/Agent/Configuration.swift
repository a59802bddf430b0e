import Classification
import Foundation
import Logging

/// The agent's configuration file (`/etc/mrsort/mrsort.yaml`): global settings and folder rules.
public struct AgentConfiguration: Sendable {
    /// The packaged location.
    public static let defaultPath = "/etc/mrsort/mrsort.yaml"

    /// Journal, audit log, series decisions and status.
    public var stateDirectory: String
    /// Folder with the model files; nil: the shipped models (`ModelDirectory.locate()`).
    public var models: String?
    public var logLevel: Logger.Level
    /// Series classified at the same time.
    public var workerThreads: Int
    /// At most this many images per series, evenly spaced, are decoded for the CNN.
    public var cnnImagesPerSeries: Int
    /// Full rescan interval: network mounts send no inotify events.
    public var rescanSeconds: Double
    /// The most bytes one frame of an arriving file may decode to; a file that claims more (a
    /// crafted Rows × Columns) is quarantined before anything is decoded.
    public var maximumFrameBytes: Int
    /// Trigger commands running at once; a study due meanwhile waits its turn.
    public var maximumRunningTriggers: Int = 2
    public var rules: [FolderRule]
    /// DICOM listeners (`mrsort receive NAME`, one systemd unit each) writing into watched folders.
    public var receivers: [DICOMReceiver] = []
    /// DICOM nodes (PACS, pipelines) that rules forward sorted series to.
    public var destinations: [DICOMDestination] = []
    /// What validation allowed but found likely wrong, as `file:line:column: message`.
    public var warnings: [String] = []

    /// Every folder the agent reads or writes, for `ReadWritePaths=` and for checks.
    public var folders: [String] {
        var result = [stateDirectory]
        for rule in rules {
            result += rule.watch
            result += [rule.output, rule.review, rule.quarantine].compactMap { $0 }
            result += rule.triggers.compactMap(\.inbox)
        }
        var seen = Set<String>()
        return result.filter { seen.insert($0).inserted }
    }
}

/// What the agent does with the files of one set of drop folders.
public struct FolderRule: Sendable {
    public var name: String
    /// Drop folders (absolute).
    public var watch: [String]
    public var recursive: Bool
    /// A series is quiescent after this long without a new or changed file.
    public var quietSeconds: Double
    /// An empty or truncated file that stays unchanged this long is quarantined (a transfer in
    /// progress may pause; default ten quiet periods, at least a minute).
    public var incompleteSeconds: Double
    public var action: Action
    /// Root of the sorted layout (move/copy).
    public var output: String?
    /// Path of each file under `output` (and under `review`).
    public var layout: PathTemplate
    /// New SeriesDescription (rewrite).
    public var description: PathTemplate
    /// Series below this confidence go to `review`.
    public var minimumConfidence: Double
    public var review: String?
    /// Files that cannot be handled, each with a `.reason` file.
    public var quarantine: String
    public var duplicates: DuplicatePolicy
    public var triggers: [StudyTrigger]
    /// DICOM destinations each sorted series (of the given classes) is sent to.
    public var forward: [ForwardRoute] = []

    /// What is done to the files of a classified series.
    public struct Action: Sendable, Equatable, CustomStringConvertible {
        /// SeriesDescription rewritten from the description template.
        public var rewrite: Bool
        /// Where the files go afterwards; nil: they stay where they are.
        public var delivery: Delivery?

        public enum Delivery: String, Sendable {
            case move, copy
        }

        public init(rewrite: Bool, delivery: Delivery?) {
            self.rewrite = rewrite
            self.delivery = delivery
        }

        /// `rewrite`, `move`, `copy`, `rewrite+move`, `rewrite+copy`.
        public init?(_ text: String) {
            switch text {
            case "rewrite": self.init(rewrite: true, delivery: nil)
            case "move": self.init(rewrite: false, delivery: .move)
            case "copy": self.init(rewrite: false, delivery: .copy)
            case "rewrite+move": self.init(rewrite: true, delivery: .move)
            case "rewrite+copy": self.init(rewrite: true, delivery: .copy)
            default: return nil
            }
        }

        public var description: String {
            switch (rewrite, delivery) {
            case (true, nil): "rewrite"
            case (true, let delivery?): "rewrite+" + delivery.rawValue
            case (false, let delivery?): delivery.rawValue
            case (false, nil): "none"
            }
        }
    }
}

/// A storage SCP that receives C-STORE into a watched folder (`mrsort receive NAME`).
public struct DICOMReceiver: Sendable, Equatable {
    /// Names the systemd unit instance (`mrsort-receiver@NAME`) and its status file.
    public var name: String
    public var aeTitle: String
    public var port: UInt16
    /// Calling AE titles allowed to store; empty: any (check-config warns).
    public var allowedCallingAETitles: [String]
    /// A watched folder (or one below a recursive one) of a rule.
    public var folder: String
    public var maximumAssociations: Int
    /// Below this much free space on the folder's file system, C-STORE is refused (0xA700).
    public var minimumFreeMegabytes: Int
    public var timeoutSeconds: Int

    /// Where instances are written while they arrive: a hidden folder inside `folder` (same file
    /// system, so the final rename is atomic; hidden names are never read by the agent).
    public var staging: String { folder + "/.receiving-" + name }
}

/// A DICOM node that sorted series are sent to by C-STORE.
public struct DICOMDestination: Sendable, Equatable {
    public var name: String
    public var host: String
    public var port: UInt16
    public var calledAETitle: String
    public var callingAETitle: String
    /// Further sends after a failed one; after the last, the series goes to the dead-letter folder.
    public var retries: Int
    public var retrySeconds: Double
    public var timeoutSeconds: Int
}

/// A rule's forwarding of sorted series to a destination.
public struct ForwardRoute: Sendable, Equatable {
    public var destination: String
    /// The classes forwarded; empty: every series (series sent to review never are).
    public var classes: Set<SequenceClass>

    public func forwards(_ sequence: SequenceClass) -> Bool { classes.isEmpty || classes.contains(sequence) }
}

/// What happens when a file's destination already exists.
public enum DuplicatePolicy: String, Sendable, CaseIterable {
    /// The existing file stays; the incoming one goes to quarantine with the reason.
    case skip
    /// The incoming file is written beside it under a numbered name (`name~1.dcm`).
    case keepBoth = "keep-both"
    /// Byte-identical: the incoming copy is redundant (a move removes it); different: keep both.
    case replaceIdentical = "replace-identical"
}

/// A downstream pipeline started once per study when the study holds the named classes.
public struct StudyTrigger: Sendable {
    public var name: String
    public var requires: Set<SequenceClass>
    /// The study must have been quiet this long.
    public var quietSeconds: Double
    /// argv (no shell); the study folder and the manifest path are appended.
    public var command: [String]?
    /// Folder that receives `<StudyInstanceUID>.json` manifests.
    public var inbox: String?
    /// A command still running this long is stopped (SIGTERM to its process group, SIGKILL
    /// ten seconds later) and recorded as timed out.
    public var timeoutSeconds: Double = 86_400
    /// Further starts after a failed one (the command could not start, exited non-zero, timed
    /// out, or the agent stopped while it ran); 0 = never start again.
    public var retries: Int = 0
    /// Wait between a failure and the next start.
    public var retrySeconds: Double = 600
    /// Whether a series arriving after the trigger fired makes it fire again.
    public var refire: Refire = .never
    /// The command's log keeps its first this-many bytes; what follows is dropped and marked so.
    public var maximumLogBytes: Int = 16 << 20

    /// What a series that arrives after the trigger fired does.
    public enum Refire: String, Sendable, CaseIterable {
        /// Recorded as a late series in `triggers.jsonl` and the log; no new manifest.
        case never
        /// The trigger fires again for the study (a new manifest revision with every series)
        /// once the study is quiet again.
        case onNewSeries = "on-new-series"
    }
}

/// Everything wrong with a configuration file, each problem with its line and column.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var problems: [Problem]

    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        /// Where in the file; nil for a problem with the file as a whole (it cannot be read).
        public var at: SourceLocation?
        public var message: String

        public var description: String { at.map { "\($0): \(message)" } ?? message }
    }

    public var description: String {
        problems.map { "\(file):" + ($0.at == nil ? " " : "") + "\($0)" }.joined(separator: "\n")
    }
}
