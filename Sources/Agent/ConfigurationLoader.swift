import Classification
import DICOM
import Foundation
import Logging

extension AgentConfiguration {
    /// Reads, decodes and validates a configuration file.
    ///
    /// - Parameter checkFolders: whether watched folders must exist (off for tests that only parse).
    /// - Throws: `ConfigurationError` listing every problem found, each with line and column.
    public static func load(contentsOf path: String, checkFolders: Bool = true) throws(ConfigurationError) -> AgentConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            // The system's own reason (no such file, permission denied), not Foundation's wording.
            var info = stat()
            let reason = stat(path, &info) != 0 ? String(cString: strerror(errno))
                : (info.st_mode & S_IFMT) == S_IFDIR ? "it is a folder" : access(path, R_OK) != 0 ? String(cString: strerror(errno)) : "not UTF-8 text"
            throw ConfigurationError(file: path, problems: [.init(at: nil, message: "cannot read the configuration: \(reason)")])
        }
        return try parse(text, file: path, checkFolders: checkFolders)
    }

    /// Decodes and validates configuration text; `file` names it in errors.
    public static func parse(_ text: String, file: String, checkFolders: Bool = true) throws(ConfigurationError) -> AgentConfiguration {
        let root: YAMLNode
        do {
            root = try YAMLNode.parse(text)
        } catch {
            throw ConfigurationError(file: file, problems: [.init(at: error.at, message: error.message)])
        }
        var decoder = ConfigurationDecoder()
        let configuration = decoder.decode(root)
        if let configuration {
            decoder.validate(configuration, checkFolders: checkFolders)
        }
        guard var configuration, decoder.problems.isEmpty else {
            throw ConfigurationError(file: file, problems: decoder.problems)
        }
        configuration.warnings = decoder.warnings.map { "\(file):\($0)" }
        return configuration
    }
}

/// Walks the YAML tree, collecting every problem rather than stopping at the first.
struct ConfigurationDecoder {
    var problems: [ConfigurationError.Problem] = []
    /// What is allowed but likely wrong; reported by check-config and logged by the agent.
    var warnings: [ConfigurationError.Problem] = []
    /// Where each folder was written, for the semantic checks' messages.
    private var folderLocations: [String: SourceLocation] = [:]
    private var ruleLocations: [SourceLocation] = []
    /// Where each receiver, destination and forward entry was named.
    private var nameLocations: [String: SourceLocation] = [:]
    private var destinationLocations: [String: SourceLocation] = [:]

    mutating func problem(_ at: SourceLocation, _ message: String) {
        problems.append(.init(at: at, message: message))
    }

    mutating func warning(_ at: SourceLocation, _ message: String) {
        warnings.append(.init(at: at, message: message))
    }

    mutating func decode(_ root: YAMLNode) -> AgentConfiguration? {
        guard let fields = mapping(root, keys: ["state_directory", "models", "log_level", "worker_threads", "cnn_images_per_series", "rescan_seconds", "maximum_frame_megabytes", "maximum_running_triggers", "rules", "receivers", "destinations"], context: "the configuration") else {
            return nil
        }
        let stateDirectory = fields["state_directory"].flatMap { folder($0, "state_directory") } ?? "/var/lib/mrsort/state"
        let models = fields["models"].flatMap { folder($0, "models") }
        let logLevel = fields["log_level"].flatMap { enumeration($0, "log_level", Logger.Level.self) } ?? .info
        let workerThreads = fields["worker_threads"].flatMap { integer($0, "worker_threads", range: 1...64) } ?? 2
        let cnnImages = fields["cnn_images_per_series"].flatMap { integer($0, "cnn_images_per_series", range: 1...10_000) }
            ?? SeriesClassifier.defaultCNNImagesPerSeries
        let rescanSeconds = fields["rescan_seconds"].flatMap { number($0, "rescan_seconds", range: 1...86_400) } ?? 300
        // DCMTK sizes a frame in 32 bits: 4095 MB is the most it can decode.
        let frameMegabytes = fields["maximum_frame_megabytes"].flatMap { integer($0, "maximum_frame_megabytes", range: 1...4095) }
            ?? DICOMFile.maximumDecodedFrameBytes >> 20
        var rules: [FolderRule] = []
        if let node = fields["rules"] {
            if case .sequence(let items, _) = node {
                for item in items {
                    ruleLocations.append(item.location)
                    if let rule = decodeRule(item) { rules.append(rule) }
                }
                if items.isEmpty { problem(node.location, "rules: at least one rule is needed") }
            } else {
                problem(node.location, "rules: expected a list of rules, found \(node.kind)")
            }
        } else {
            problem(root.location, "missing key \"rules\"")
        }
        let runningTriggers = fields["maximum_running_triggers"].flatMap { integer($0, "maximum_running_triggers", range: 1...64) } ?? 2
        let receivers = items(fields["receivers"], "receivers").compactMap { decodeReceiver($0) }
        let destinations = items(fields["destinations"], "destinations").compactMap { decodeDestination($0) }
        return AgentConfiguration(
            stateDirectory: stateDirectory, models: models, logLevel: logLevel, workerThreads: workerThreads,
            cnnImagesPerSeries: cnnImages, rescanSeconds: rescanSeconds, maximumFrameBytes: frameMegabytes << 20,
            maximumRunningTriggers: runningTriggers, rules: rules, receivers: receivers, destinations: destinations
        )
    }

    private mutating func decodeRule(_ node: YAMLNode) -> FolderRule? {
        let keys = ["name", "watch", "recursive", "quiet_seconds", "incomplete_seconds", "action", "output", "layout", "description",
                    "minimum_confidence", "review", "quarantine", "duplicates", "triggers", "forward"]
        guard let fields = mapping(node, keys: keys, context: "a rule") else { return nil }
        let before = problems.count
        let name = required(fields, "name", in: node).flatMap { string($0, "name") } ?? "?"
        var watch: [String] = []
        if let node = required(fields, "watch", in: node) {
            switch node {
            case .scalar: watch = folder(node, "watch").map { [$0] } ?? []
            case .sequence(let items, _):
                watch = items.compactMap { folder($0, "watch") }
                if items.isEmpty { problem(node.location, "watch: at least one folder is needed") }
            case .mapping: problem(node.location, "watch: expected a folder or a list of folders, found a mapping")
            }
        }
        let recursive = fields["recursive"].flatMap { boolean($0, "recursive") } ?? true
        let quietSeconds = fields["quiet_seconds"].flatMap { number($0, "quiet_seconds", range: 0...86_400) } ?? 30
        let incompleteSeconds = fields["incomplete_seconds"].flatMap { number($0, "incomplete_seconds", range: 0...604_800) }
            ?? max(quietSeconds * 10, 60)
        var action: FolderRule.Action?
        if let node = required(fields, "action", in: node), let text = string(node, "action") {
            action = FolderRule.Action(text)
            if action == nil {
                problem(node.location, "action: unknown action \"\(text)\"; one of rewrite, move, copy, rewrite+move, rewrite+copy")
            }
        }
        let output = fields["output"].flatMap { folder($0, "output") }
        if let action, action.delivery != nil, output == nil {
            problem(node.location, "rule \"\(name)\": action \(action) needs an output folder")
        }
        let layout = template(fields["layout"], "layout") ?? (try? PathTemplate(PathTemplate.defaultLayout))
        if let layout, let node = fields["layout"], action?.delivery != nil {
            // Files of two studies in one folder reach a study's pipeline as if they were one study.
            if !layout.uses([.studyInstanceUID, .studyKey]) {
                warning(node.location, "rule \"\(name)\": the layout does not identify the study ({StudyKey} or {StudyInstanceUID}); two studies of one patient and day, or of a de-identified export, share its folders")
            }
            if !layout.uses([.seriesInstanceUID, .seriesKey, .seriesNumber]) {
                warning(node.location, "rule \"\(name)\": the layout does not identify the series ({SeriesNumber}, {SeriesKey} or {SeriesInstanceUID}); series of one class share a folder")
            }
        }
        let description = template(fields["description"], "description") ?? (try? PathTemplate("{sequence} {orientation}"))
        let minimumConfidence = fields["minimum_confidence"].flatMap { number($0, "minimum_confidence", range: 0...1) } ?? 0
        let review = fields["review"].flatMap { folder($0, "review") }
        if minimumConfidence > 0, review == nil {
            problem(node.location, "rule \"\(name)\": minimum_confidence needs a review folder")
        }
        let quarantine = required(fields, "quarantine", in: node).flatMap { folder($0, "quarantine") }
        let duplicates = fields["duplicates"].flatMap { enumeration($0, "duplicates", DuplicatePolicy.self) } ?? .replaceIdentical
        var triggers: [StudyTrigger] = []
        if let node = fields["triggers"] {
            if case .sequence(let items, _) = node {
                triggers = items.compactMap { decodeTrigger($0) }
            } else {
                problem(node.location, "triggers: expected a list, found \(node.kind)")
            }
        }
        let forward = items(fields["forward"], "forward").compactMap { decodeForwardRoute($0) }
        guard problems.count == before, let action, let layout, let description, let quarantine else { return nil }
        return FolderRule(
            name: name, watch: watch, recursive: recursive, quietSeconds: quietSeconds, incompleteSeconds: incompleteSeconds, action: action, output: output,
            layout: layout, description: description, minimumConfidence: minimumConfidence, review: review,
            quarantine: quarantine, duplicates: duplicates, triggers: triggers, forward: forward
        )
    }

    private mutating func decodeTrigger(_ node: YAMLNode) -> StudyTrigger? {
        guard let fields = mapping(node, keys: ["name", "requires", "quiet_seconds", "command", "inbox", "timeout_seconds", "retries", "retry_seconds", "refire", "maximum_log_megabytes"], context: "a trigger") else { return nil }
        let before = problems.count
        let name = required(fields, "name", in: node).flatMap { string($0, "name") } ?? "?"
        var requires = Set<SequenceClass>()
        if let list = required(fields, "requires", in: node) {
            for item in strings(list, "requires") {
                if let value = SequenceClass(rawValue: item.value) { requires.insert(value) } else {
                    problem(item.at, "requires: unknown sequence class \"\(item.value)\"")
                }
            }
            // Every study, even one of localisers only, would satisfy an empty list.
            if case .sequence(let items, _) = list, items.isEmpty { problem(list.location, "requires: at least one sequence class is needed") }
        }
        let quietSeconds = fields["quiet_seconds"].flatMap { number($0, "quiet_seconds", range: 0...604_800) } ?? 300
        let command = fields["command"].map { strings($0, "command").map(\.value) }
        if let command, command.isEmpty, let node = fields["command"] { problem(node.location, "command: the argv list is empty") }
        if let command, let first = command.first, !first.hasPrefix("/"), let node = fields["command"] {
            problem(node.location, "command: \"\(first)\" must be an absolute path (no shell, no PATH lookup)")
        }
        let inbox = fields["inbox"].flatMap { folder($0, "inbox") }
        if command == nil, inbox == nil { problem(node.location, "trigger \"\(name)\": needs a command, an inbox or both") }
        let timeout = fields["timeout_seconds"].flatMap { number($0, "timeout_seconds", range: 1...2_592_000) } ?? 86_400
        let retries = fields["retries"].flatMap { integer($0, "retries", range: 0...100) } ?? 0
        let retrySeconds = fields["retry_seconds"].flatMap { number($0, "retry_seconds", range: 1...604_800) } ?? 600
        let refire = fields["refire"].flatMap { enumeration($0, "refire", StudyTrigger.Refire.self) } ?? .never
        let logMegabytes = fields["maximum_log_megabytes"].flatMap { integer($0, "maximum_log_megabytes", range: 1...4096) } ?? 16
        guard problems.count == before else { return nil }
        return StudyTrigger(name: name, requires: requires, quietSeconds: quietSeconds, command: command, inbox: inbox, timeoutSeconds: timeout,
                            retries: retries, retrySeconds: retrySeconds, refire: refire, maximumLogBytes: logMegabytes << 20)
    }

    /// The items of an optional list (absent: none).
    private mutating func items(_ node: YAMLNode?, _ key: String) -> [YAMLNode] {
        guard let node else { return [] }
        guard case .sequence(let items, _) = node else {
            problem(node.location, "\(key): expected a list, found \(node.kind)")
            return []
        }
        return items
    }

    private mutating func decodeReceiver(_ node: YAMLNode) -> DICOMReceiver? {
        guard let fields = mapping(node, keys: ["name", "ae_title", "port", "allowed_calling_ae_titles", "folder", "maximum_associations",
                                                "minimum_free_megabytes", "timeout_seconds"], context: "a receiver") else { return nil }
        let before = problems.count
        let name = required(fields, "name", in: node).flatMap { unitName($0, "name") } ?? "?"
        nameLocations["receiver " + name] = nameLocations["receiver " + name] ?? node.location
        let aeTitle = required(fields, "ae_title", in: node).flatMap { applicationEntity($0, "ae_title") } ?? ""
        // 11112: the registered DICOM port (104 needs privileges the unit does not have).
        let port = fields["port"].flatMap { integer($0, "port", range: 1...65_535) } ?? 11_112
        var allowed: [String] = []
        if let node = fields["allowed_calling_ae_titles"] {
            allowed = strings(node, "allowed_calling_ae_titles").compactMap { item in
                ApplicationEntityTitle.problem(item.value).map { problem(item.at, "allowed_calling_ae_titles: \($0)") } == nil ? item.value : nil
            }
        } else {
            warning(node.location, "receiver \"\(name)\": no allowed_calling_ae_titles, any DICOM node that reaches port \(port) may store images")
        }
        let target = required(fields, "folder", in: node).flatMap { folder($0, "folder") } ?? ""
        let associations = fields["maximum_associations"].flatMap { integer($0, "maximum_associations", range: 1...64) } ?? 4
        let free = fields["minimum_free_megabytes"].flatMap { integer($0, "minimum_free_megabytes", range: 0...10_000_000) } ?? 1024
        let timeout = fields["timeout_seconds"].flatMap { integer($0, "timeout_seconds", range: 1...3600) } ?? 60
        guard problems.count == before else { return nil }
        return DICOMReceiver(name: name, aeTitle: aeTitle, port: UInt16(port), allowedCallingAETitles: allowed, folder: target,
                             maximumAssociations: associations, minimumFreeMegabytes: free, timeoutSeconds: timeout)
    }

    private mutating func decodeDestination(_ node: YAMLNode) -> DICOMDestination? {
        guard let fields = mapping(node, keys: ["name", "host", "port", "called_ae_title", "calling_ae_title", "retries", "retry_seconds",
                                                "timeout_seconds"], context: "a destination") else { return nil }
        let before = problems.count
        let name = required(fields, "name", in: node).flatMap { unitName($0, "name") } ?? "?"
        nameLocations["destination " + name] = nameLocations["destination " + name] ?? node.location
        let host = required(fields, "host", in: node).flatMap { string($0, "host") } ?? ""
        if host.isEmpty || host.contains(where: \.isWhitespace), let node = fields["host"] { problem(node.location, "host: \"\(host)\" is not a host name or address") }
        let port = required(fields, "port", in: node).flatMap { integer($0, "port", range: 1...65_535) } ?? 0
        let called = required(fields, "called_ae_title", in: node).flatMap { applicationEntity($0, "called_ae_title") } ?? ""
        let calling = fields["calling_ae_title"].flatMap { applicationEntity($0, "calling_ae_title") } ?? "MRSORT"
        let retries = fields["retries"].flatMap { integer($0, "retries", range: 0...1000) } ?? 10
        let retrySeconds = fields["retry_seconds"].flatMap { number($0, "retry_seconds", range: 1...604_800) } ?? 300
        let timeout = fields["timeout_seconds"].flatMap { integer($0, "timeout_seconds", range: 1...3600) } ?? 60
        guard problems.count == before else { return nil }
        return DICOMDestination(name: name, host: host, port: UInt16(port), calledAETitle: called, callingAETitle: calling,
                                retries: retries, retrySeconds: retrySeconds, timeoutSeconds: timeout)
    }

    /// `- pacs` (every series) or `- {destination: pacs, classes: [flair_3d, t1_3d_pre]}`.
    private mutating func decodeForwardRoute(_ node: YAMLNode) -> ForwardRoute? {
        if case .scalar = node {
            guard let destination = string(node, "forward") else { return nil }
            destinationLocations[destination] = destinationLocations[destination] ?? node.location
            return ForwardRoute(destination: destination, classes: [])
        }
        guard let fields = mapping(node, keys: ["destination", "classes"], context: "a forward entry") else { return nil }
        let before = problems.count
        let destination = required(fields, "destination", in: node).flatMap { string($0, "destination") } ?? ""
        var classes = Set<SequenceClass>()
        if let list = fields["classes"] {
            for item in strings(list, "classes") {
                if let value = SequenceClass(rawValue: item.value) { classes.insert(value) } else {
                    problem(item.at, "classes: unknown sequence class \"\(item.value)\"")
                }
            }
        }
        guard problems.count == before else { return nil }
        destinationLocations[destination] = destinationLocations[destination] ?? node.location
        return ForwardRoute(destination: destination, classes: classes)
    }

    // MARK: Semantic checks

    mutating func validate(_ configuration: AgentConfiguration, checkFolders: Bool) {
        let watched = configuration.rules.enumerated().flatMap { index, rule in rule.watch.map { (folder: $0, rule: index) } }
        let written = configuration.rules.enumerated().flatMap { index, rule in
            [rule.output, rule.review, rule.quarantine].compactMap { $0 }.map { (folder: $0, rule: index) }
        } + [(folder: configuration.stateDirectory, rule: -1)]
        for (index, rule) in configuration.rules.enumerated() {
            let at = ruleLocations.indices.contains(index) ? ruleLocations[index] : SourceLocation(line: 1, column: 1)
            if checkFolders {
                for folder in rule.watch {
                    var isDirectory: ObjCBool = false
                    if !FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) {
                        problem(folderLocations[folder] ?? at, "watch: folder \(folder) does not exist")
                    } else if !isDirectory.boolValue {
                        problem(folderLocations[folder] ?? at, "watch: \(folder) is not a folder")
                    }
                }
            }
            for folder in rule.watch {
                // Sorted files would be picked up again and sorted forever.
                for target in written where Self.contains(folder, target.folder) || Self.contains(target.folder, folder) {
                    problem(folderLocations[folder] ?? at, "rule \"\(rule.name)\": watched folder \(folder) overlaps the output, review, quarantine or state folder \(target.folder)")
                }
                for other in watched where other.rule != index && (other.folder == folder
                    || (configuration.rules[other.rule].recursive && Self.contains(other.folder, folder))) {
                    problem(folderLocations[folder] ?? at, "rule \"\(rule.name)\": watched folder \(folder) is also watched by rule \"\(configuration.rules[other.rule].name)\" (\(other.folder))")
                }
            }
        }
        var inboxes: [String: String] = [:]
        for (index, rule) in configuration.rules.enumerated() {
            let at = ruleLocations.indices.contains(index) ? ruleLocations[index] : SourceLocation(line: 1, column: 1)
            var triggerNames = Set<String>()
            for trigger in rule.triggers {
                // Triggers are remembered by name: a second of the same name would never fire.
                if !triggerNames.insert(trigger.name).inserted {
                    problem(at, "rule \"\(rule.name)\": trigger name \"\(trigger.name)\" is used twice")
                }
                guard let inbox = trigger.inbox else { continue }
                // A manifest dropped into a watched folder would be quarantined as not DICOM.
                for folder in watched.map(\.folder) where Self.contains(folder, inbox) || Self.contains(inbox, folder) {
                    problem(at, "rule \"\(rule.name)\": trigger \"\(trigger.name)\": inbox \(inbox) overlaps the watched folder \(folder)")
                }
                // Manifests are named by study: two triggers' manifests would overwrite each other.
                let key = Self.resolved(inbox)
                if let other = inboxes[key] {
                    problem(at, "rule \"\(rule.name)\": trigger \"\(trigger.name)\": inbox \(inbox) is also trigger \"\(other)\"'s inbox")
                } else {
                    inboxes[key] = trigger.name
                }
            }
        }
        validateNetwork(configuration)
        var names = Set<String>()
        for (index, rule) in configuration.rules.enumerated() where !names.insert(rule.name).inserted {
            problem(ruleLocations.indices.contains(index) ? ruleLocations[index] : .init(line: 1, column: 1), "rule name \"\(rule.name)\" is used twice")
        }
    }

    /// Receivers write into watched folders and listen on ports of their own; forward entries
    /// name destinations that exist.
    private mutating func validateNetwork(_ configuration: AgentConfiguration) {
        var receiverNames = Set<String>(), ports: [UInt16: String] = [:]
        for receiver in configuration.receivers {
            let at = nameLocations["receiver " + receiver.name] ?? SourceLocation(line: 1, column: 1)
            if !receiverNames.insert(receiver.name).inserted { problem(at, "receiver name \"\(receiver.name)\" is used twice") }
            if let other = ports[receiver.port] {
                problem(at, "receiver \"\(receiver.name)\": port \(receiver.port) is also receiver \"\(other)\"'s")
            } else {
                ports[receiver.port] = receiver.name
            }
            // Instances nobody sorts would pile up unseen.
            let watched = configuration.rules.contains { rule in
                rule.watch.contains { $0 == receiver.folder || (rule.recursive && Self.contains($0, receiver.folder)) }
            }
            if !watched {
                problem(folderLocations[receiver.folder] ?? at, "receiver \"\(receiver.name)\": folder \(receiver.folder) is not watched by any rule")
            }
        }
        var destinationNames = Set<String>()
        for destination in configuration.destinations where !destinationNames.insert(destination.name).inserted {
            problem(nameLocations["destination " + destination.name] ?? SourceLocation(line: 1, column: 1), "destination name \"\(destination.name)\" is used twice")
        }
        for rule in configuration.rules {
            for route in rule.forward where !destinationNames.contains(route.destination) {
                problem(destinationLocations[route.destination] ?? SourceLocation(line: 1, column: 1),
                        "rule \"\(rule.name)\": forward: no destination named \"\(route.destination)\"" +
                        (destinationNames.isEmpty ? " (destinations: is empty)" : "; destinations: " + destinationNames.sorted().joined(separator: ", ")))
            }
        }
    }

    /// Whether `inner` is `outer` or lies below it, as spelt or once symbolic links are
    /// resolved (an output that is a link into the drop folder is inside it).
    static func contains(_ outer: String, _ inner: String) -> Bool {
        func below(_ outer: String, _ inner: String) -> Bool {
            let outer = outer.hasSuffix("/") ? String(outer.dropLast()) : outer
            return inner == outer || inner.hasPrefix(outer + "/")
        }
        return below(outer, inner) || below(resolved(outer), resolved(inner))
    }

    /// `path` with symbolic links, `.` and `..` resolved as far as it exists; the part that does
    /// not exist yet (an output folder the agent will create) is appended as spelt.
    static func resolved(_ path: String) -> String {
        var existing = path
        var rest: [String] = []
        while !existing.isEmpty, existing != "/" {
            if let real = realpath(existing, nil) {
                defer { free(real) }
                let base = String(cString: real)
                return rest.isEmpty ? base : (base == "/" ? "" : base) + "/" + rest.reversed().joined(separator: "/")
            }
            rest.append((existing as NSString).lastPathComponent)
            existing = (existing as NSString).deletingLastPathComponent
        }
        return path
    }

    // MARK: Typed values

    private mutating func mapping(_ node: YAMLNode, keys: [String], context: String) -> [String: YAMLNode]? {
        guard case .mapping(let pairs, _) = node else {
            problem(node.location, "\(context): expected a mapping, found \(node.kind)")
            return nil
        }
        var result: [String: YAMLNode] = [:]
        for (key, value) in pairs {
            guard case .scalar(let name, _, _) = key else {
                problem(key.location, "\(context): keys must be plain names")
                continue
            }
            if !keys.contains(name) {
                problem(key.location, "unknown key \"\(name)\" in \(context); known keys: " + keys.joined(separator: ", "))
            } else if result[name] != nil {
                problem(key.location, "key \"\(name)\" appears twice in \(context)")
            } else {
                result[name] = value
            }
        }
        return result
    }

    private mutating func required(_ fields: [String: YAMLNode], _ key: String, in node: YAMLNode) -> YAMLNode? {
        if let value = fields[key] { return value }
        problem(node.location, "missing key \"\(key)\"")
        return nil
    }

    private mutating func string(_ node: YAMLNode, _ key: String) -> String? {
        guard case .scalar(let text, _, _) = node else {
            problem(node.location, "\(key): expected a scalar, found \(node.kind)")
            return nil
        }
        return text
    }

    private mutating func strings(_ node: YAMLNode, _ key: String) -> [(value: String, at: SourceLocation)] {
        guard case .sequence(let items, _) = node else {
            problem(node.location, "\(key): expected a list, found \(node.kind)")
            return []
        }
        return items.compactMap { item in string(item, key).map { ($0, item.location) } }
    }

    private mutating func folder(_ node: YAMLNode, _ key: String) -> String? {
        guard let text = string(node, key) else { return nil }
        guard text.hasPrefix("/") else {
            problem(node.location, "\(key): \"\(text)\" must be an absolute path")
            return nil
        }
        let normalised = URL(fileURLWithPath: text).standardized.path
        if folderLocations[normalised] == nil { folderLocations[normalised] = node.location }
        return normalised
    }

    /// A name that can stand in a systemd unit instance and a file name.
    private mutating func unitName(_ node: YAMLNode, _ key: String) -> String? {
        guard let text = string(node, key) else { return nil }
        guard !text.isEmpty, text.count <= 64, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            problem(node.location, "\(key): \"\(text)\" must be 1–64 letters, digits, '-' or '_' (it names a unit and a file)")
            return nil
        }
        return text
    }

    private mutating func applicationEntity(_ node: YAMLNode, _ key: String) -> String? {
        guard let text = string(node, key) else { return nil }
        if let reason = ApplicationEntityTitle.problem(text) {
            problem(node.location, "\(key): \(reason)")
            return nil
        }
        return text
    }

    private mutating func number(_ node: YAMLNode, _ key: String, range: ClosedRange<Double>) -> Double? {
        guard let text = string(node, key) else { return nil }
        guard let value = Double(text), value.isFinite else {
            problem(node.location, "\(key): expected a number, found \"\(text)\"")
            return nil
        }
        guard range.contains(value) else {
            problem(node.location, "\(key): \(text) is outside \(range.lowerBound.formatted())…\(range.upperBound.formatted())")
            return nil
        }
        return value
    }

    private mutating func integer(_ node: YAMLNode, _ key: String, range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, key) else { return nil }
        guard let value = Int(text) else {
            problem(node.location, "\(key): expected a whole number, found \"\(text)\"")
            return nil
        }
        guard range.contains(value) else {
            problem(node.location, "\(key): \(value) is outside \(range.lowerBound)…\(range.upperBound)")
            return nil
        }
        return value
    }

    /// One of an enumeration's raw values; the problem names them all.
    private mutating func enumeration<Value: RawRepresentable & CaseIterable>(_ node: YAMLNode, _ key: String, _ type: Value.Type) -> Value?
    where Value.RawValue == String {
        guard let text = string(node, key) else { return nil }
        guard let value = Value(rawValue: text) else {
            problem(node.location, "\(key): unknown value \"\(text)\"; one of " + Value.allCases.map(\.rawValue).joined(separator: ", "))
            return nil
        }
        return value
    }

    private mutating func boolean(_ node: YAMLNode, _ key: String) -> Bool? {
        guard let text = string(node, key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            problem(node.location, "\(key): expected true or false, found \"\(text)\"")
            return nil
        }
    }

    private mutating func template(_ node: YAMLNode?, _ key: String) -> PathTemplate? {
        guard let node, let text = string(node, key) else { return nil }
        do {
            return try PathTemplate(text)
        } catch {
            problem(node.location, "\(key): \(error.reason)")
            return nil
        }
    }
}
