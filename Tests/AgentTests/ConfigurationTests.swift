import Foundation
import Testing
@testable import Agent

@Suite("Configuration file")
struct ConfigurationTests {
    /// Parses `text`, expecting failure; returns the problems as "line:column: message".
    func problems(_ text: String) -> [String] {
        do {
            _ = try AgentConfiguration.parse(text, file: "test.yaml", checkFolders: false)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    @Test("The shipped example parses, with its documented defaults")
    func example() throws {
        let configuration = try AgentConfiguration.load(contentsOf: Paths.exampleConfiguration, checkFolders: false)
        #expect(configuration.stateDirectory == "/var/lib/mrsort/state")
        #expect(configuration.rules.count == 1)
        let rule = try #require(configuration.rules.first)
        #expect(rule.watch == ["/var/lib/mrsort/incoming"])
        #expect(rule.action == .init(rewrite: false, delivery: .move))
        #expect(rule.duplicates == .replaceIdentical)
        #expect(rule.minimumConfidence == 0.5)
        #expect(configuration.maximumFrameBytes == 256 << 20)
        #expect(configuration.folders == ["/var/lib/mrsort/state", "/var/lib/mrsort/incoming", "/var/lib/mrsort/sorted",
                                          "/var/lib/mrsort/review", "/var/lib/mrsort/quarantine"])
    }

    @Test("Unknown keys and wrong types are reported with line and column, all of them")
    func unknownKeysAndTypes() {
        let found = problems("""
        state_directory: /s
        worker_threads: many
        rules:
          - name: a
            watch: /in
            quiet_secs: 3
            action: move
            output: /out
            quarantine: /q
            recursive: perhaps
        """)
        #expect(found.contains { $0.hasPrefix("2:17: worker_threads: expected a whole number") })
        #expect(found.contains { $0.hasPrefix("6:5: unknown key \"quiet_secs\" in a rule") })
        #expect(found.contains { $0.hasPrefix("10:16: recursive: expected true or false") })
        #expect(found.count == 3)
    }

    @Test("Bad values: action, template placeholder, relative path, confidence without review, trigger class")
    func badValues() {
        let found = problems("""
        rules:
          - name: a
            watch: in
            action: shuffle
            layout: "{PatientName}/{SOPInstanceUID}.dcm"
            minimum_confidence: 0.7
            quarantine: /q
            triggers:
              - name: t
                requires: [flair_3d, t1_gd]
                command: [ms-lesion]
        """)
        #expect(found.contains { $0.hasPrefix("3:12: watch: \"in\" must be an absolute path") })
        #expect(found.contains { $0.hasPrefix("4:13: action: unknown action \"shuffle\"") })
        #expect(found.contains { $0.hasPrefix("5:13: layout: unknown placeholder {PatientName}") })
        #expect(found.contains { $0.contains("minimum_confidence needs a review folder") })
        #expect(found.contains { $0.hasPrefix("10:30: requires: unknown sequence class \"t1_gd\"") })
        #expect(found.contains { $0.contains("command: \"ms-lesion\" must be an absolute path") })
    }

    @Test("A trigger's retry, refire and log-size settings: defaults, values and bad values with their positions")
    func triggerPolicies() throws {
        let rule = """
        rules:
          - name: a
            watch: /in
            action: move
            output: /out
            quarantine: /q
            triggers:
              - name: lesions
                requires: [flair_3d]
                command: [/opt/lesions/run]
        """
        let defaults = try #require(try AgentConfiguration.parse(rule, file: "test.yaml", checkFolders: false).rules.first?.triggers.first)
        #expect(defaults.retries == 0)
        #expect(defaults.refire == .never)
        #expect(defaults.maximumLogBytes == 16 << 20)
        let set = try #require(try AgentConfiguration.parse(rule + """

                retries: 3
                retry_seconds: 120
                refire: on-new-series
                maximum_log_megabytes: 2
        """, file: "test.yaml", checkFolders: false).rules.first?.triggers.first)
        #expect(set.retries == 3)
        #expect(set.retrySeconds == 120)
        #expect(set.refire == .onNewSeries)
        #expect(set.maximumLogBytes == 2 << 20)
        let found = problems(rule + """

                retries: -1
                retry_seconds: 0
                refire: always
                maximum_log_megabytes: 0
        """)
        #expect(found.contains("11:18: retries: -1 is outside 0…100"), "\(found)")
        #expect(found.contains { $0.hasPrefix("12:24: retry_seconds: 0 is outside 1") }, "\(found)")
        #expect(found.contains("13:17: refire: unknown value \"always\"; one of never, on-new-series"), "\(found)")
        #expect(found.contains("14:32: maximum_log_megabytes: 0 is outside 1…4096"), "\(found)")
    }

    @Test("DICOM receivers, destinations and forward routes: defaults, and bad values with their positions")
    func dicomNode() throws {
        let good = try AgentConfiguration.parse("""
        rules:
          - name: mri
            watch: /in
            action: move
            output: /out
            quarantine: /q
            forward:
              - pacs
              - {destination: lesions, classes: [flair_3d, t1_3d_pre]}
        receivers:
          - name: scanner
            ae_title: MRSORT
            folder: /in
        destinations:
          - {name: pacs, host: pacs.example.org, port: 104, called_ae_title: PACS}
          - {name: lesions, host: 10.0.0.5, port: 11113, called_ae_title: LESIONS, calling_ae_title: SORTER, retries: 2, retry_seconds: 60}
        """, file: "test.yaml", checkFolders: false)
        let receiver = try #require(good.receivers.first)
        #expect(receiver.port == 11112 && receiver.allowedCallingAETitles.isEmpty && receiver.maximumAssociations == 4)
        #expect(receiver.staging == "/in/.receiving-scanner")
        #expect(good.warnings.contains { $0.contains("receiver \"scanner\": no allowed_calling_ae_titles") })
        #expect(good.destinations.map(\.callingAETitle) == ["MRSORT", "SORTER"])
        #expect(good.destinations.map(\.retries) == [10, 2])
        let routes = try #require(good.rules.first?.forward)
        #expect(routes == [ForwardRoute(destination: "pacs", classes: []), ForwardRoute(destination: "lesions", classes: [.flair3D, .t13DPre])])
        #expect(routes[1].forwards(.flair3D) && !routes[1].forwards(.t2) && routes[0].forwards(.t2))

        let found = problems("""
        rules:
          - name: mri
            watch: /in
            recursive: false
            action: move
            output: /out
            quarantine: /q
            forward:
              - archive
              - {destination: pacs, classes: [flair_4d]}
        receivers:
          - name: scanner one
            ae_title: A_TITLE_LONGER_THAN_16
            port: 70000
            folder: /in/sub
            allowed_calling_ae_titles: ['BAD\\AE']
          - name: second
            ae_title: MRSORT
            folder: /elsewhere
            allowed_calling_ae_titles: [SCANNER]
        destinations:
          - {name: pacs, host: "", port: 104, called_ae_title: PACS}
        """)
        #expect(found.contains { $0.hasPrefix("10:39: classes: unknown sequence class \"flair_4d\"") })
        #expect(found.contains { $0.hasPrefix("12:11: name: \"scanner one\" must be 1–64 letters") })
        #expect(found.contains { $0.hasPrefix("13:15: ae_title: AE title \"A_TITLE_LONGER_THAN_16\" is longer than 16 characters") })
        #expect(found.contains { $0.hasPrefix("14:11: port: 70000 is outside 1…65535") })
        #expect(found.contains { $0.hasPrefix("16:33: allowed_calling_ae_titles: AE title \"BAD\\AE\" holds") })
        #expect(found.contains { $0.hasPrefix("19:13: receiver \"second\": folder /elsewhere is not watched by any rule") })
        #expect(found.contains { $0.hasPrefix("22:24: host: \"\" is not a host name or address") })
        #expect(found.count == 7, "\(found)")
        // A route to a destination that is not configured (checked once the rule itself decodes).
        #expect(problems("""
        rules:
          - name: mri
            watch: /in
            action: move
            output: /out
            quarantine: /q
            forward: [archive]
        destinations:
          - {name: pacs, host: pacs, port: 104, called_ae_title: PACS}
        """) == ["7:15: rule \"mri\": forward: no destination named \"archive\"; destinations: pacs"])
    }

    @Test("YAML syntax errors carry the parser's position")
    func syntax() {
        let found = problems("rules:\n  - name: a\n    watch: [/in\n")
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("4:1:") == true)
    }

    @Test("A watched folder inside an output folder, overlapping rules and missing folders are refused")
    func folders() throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in/sub", withIntermediateDirectories: true)
        let text = """
        state_directory: \(root)/state
        rules:
          - name: a
            watch: \(root)/in
            action: move
            output: \(root)/in/sorted
            quarantine: \(root)/q
          - name: b
            watch: [\(root)/in/sub, \(root)/missing]
            action: copy
            output: \(root)/out
            quarantine: \(root)/q2
        """
        var found: [String] = []
        do {
            _ = try AgentConfiguration.parse(text, file: "test.yaml")
        } catch {
            found = error.problems.map(\.description)
        }
        #expect(found.contains { $0.hasPrefix("4:12: rule \"a\": watched folder \(root)/in overlaps the output") })
        #expect(found.contains { $0.hasPrefix("9:") && $0.hasSuffix("watch: folder \(root)/missing does not exist") })
        #expect(found.contains { $0.contains("rule \"b\": watched folder \(root)/in/sub is also watched by rule \"a\"") })
    }

    @Test("An output, quarantine or state folder that is a symbolic link into the drop folder is refused, and the reverse")
    func symlinkedFolders() throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in/sorted", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/archive", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/out", withDestinationPath: root + "/in/sorted")
        try FileManager.default.createSymbolicLink(atPath: root + "/drop", withDestinationPath: root + "/archive/incoming")
        try FileManager.default.createDirectory(atPath: root + "/archive/incoming", withIntermediateDirectories: true)
        let text = """
        state_directory: \(root)/state
        rules:
          - name: a
            watch: \(root)/in
            action: move
            output: \(root)/out/new
            quarantine: \(root)/q
          - name: b
            watch: \(root)/drop
            action: move
            output: \(root)/archive
            quarantine: \(root)/q2
        """
        var found: [String] = []
        do {
            _ = try AgentConfiguration.parse(text, file: "test.yaml")
        } catch {
            found = error.problems.map(\.description)
        }
        #expect(found.contains { $0.contains("rule \"a\": watched folder \(root)/in overlaps the output, review, quarantine or state folder \(root)/out/new") }, "\(found)")
        #expect(found.contains { $0.contains("rule \"b\": watched folder \(root)/drop overlaps the output, review, quarantine or state folder \(root)/archive") }, "\(found)")
        #expect(found.count == 2, "\(found)")
    }

    @Test("Out-of-range command-line values are usage errors (exit 64) that name the option, not a crash")
    func usageErrors() throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (option, value) in [("--image-size", "0"), ("--image-size", "-3"), ("--max-images-per-series", "-1"), ("--minimum-series", "0")] {
            let result = try run(Paths.mrsort, ["dataset", Paths.realData, "--out", root + "/x.safetensors", "--images", option, value])
            #expect(result.status == 64, "\(option) \(value): \(result.error)")
            #expect(result.error.contains(option), "\(result.error)")
            #expect(!FileManager.default.fileExists(atPath: root + "/x.safetensors"))
        }
    }

    @Test("A layout that cannot tell studies or series apart is a warning, printed by check-config; the default layout tells both")
    func layoutWarnings() throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        let text = """
        state_directory: \(root)/state
        rules:
          - name: a
            watch: \(root)/in
            action: move
            output: \(root)/out
            layout: "{PatientID}/{StudyDate}_{AccessionNumber}/{sequence}/{SOPInstanceUID}.dcm"
            quarantine: \(root)/q
        """
        try text.write(toFile: root + "/mrsort.yaml", atomically: true, encoding: .utf8)
        let configuration = try AgentConfiguration.load(contentsOf: root + "/mrsort.yaml")
        #expect(configuration.warnings.count == 2)
        #expect(configuration.warnings.first?.hasPrefix("\(root)/mrsort.yaml:7:13: rule \"a\": the layout does not identify the study") == true)
        let checked = try run(Paths.mrsort, ["check-config", root + "/mrsort.yaml"])
        #expect(checked.status == 0)
        #expect(checked.error.contains("warning: \(root)/mrsort.yaml:7:13: rule \"a\": the layout does not identify the study"), "\(checked.error)")
        try text.replacingOccurrences(of: "    layout: \"{PatientID}/{StudyDate}_{AccessionNumber}/{sequence}/{SOPInstanceUID}.dcm\"\n", with: "")
            .write(toFile: root + "/mrsort.yaml", atomically: true, encoding: .utf8)
        #expect(try AgentConfiguration.load(contentsOf: root + "/mrsort.yaml").warnings.isEmpty)
        #expect(try AgentConfiguration.load(contentsOf: Paths.exampleConfiguration, checkFolders: false).warnings.isEmpty)
    }

    @Test("Broken trigger set-ups are refused: an inbox in a watched folder, a shared inbox, a name used twice, no required class")
    func triggerSetUps() throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let text = """
        state_directory: \(root)/state
        rules:
          - name: a
            watch: \(root)/in
            action: move
            output: \(root)/out
            quarantine: \(root)/q
            triggers:
              - name: lesions
                requires: [flair_3d]
                inbox: \(root)/in/manifests
              - name: lesions
                requires: [t1_3d_pre]
                inbox: \(root)/inbox
              - name: volumetry
                requires: []
                inbox: \(root)/inbox
        """
        var found: [String] = []
        do {
            _ = try AgentConfiguration.parse(text, file: "test.yaml", checkFolders: false)
        } catch {
            found = error.problems.map(\.message)
        }
        #expect(found == ["requires: at least one sequence class is needed"], "\(found)")
        // With a class required, the rule decodes and the folder checks see its triggers.
        do {
            _ = try AgentConfiguration.parse(text.replacingOccurrences(of: "requires: []", with: "requires: [dwi]"), file: "test.yaml", checkFolders: false)
            Issue.record("broken triggers were accepted")
        } catch {
            found = error.problems.map(\.message)
        }
        #expect(found.contains("rule \"a\": trigger \"lesions\": inbox \(root)/in/manifests overlaps the watched folder \(root)/in"), "\(found)")
        #expect(found.contains("rule \"a\": trigger name \"lesions\" is used twice"), "\(found)")
        #expect(found.contains("rule \"a\": trigger \"volumetry\": inbox \(root)/inbox is also trigger \"lesions\"'s inbox"), "\(found)")
        #expect(found.count == 3, "\(found)")
    }

    @Test("Data problems are errors without the usage text, with sysexits statuses: no status yet, no files, a missing path (66), no DICOM, a broken labels.csv (65), an unreadable or invalid configuration (66, 78); JSON keeps slashes")
    func commandFailures() throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        try "state_directory: \(root)/state\nrules:\n  - name: a\n    watch: \(root)/empty\n    action: rewrite\n    quarantine: \(root)/q\n"
            .write(toFile: root + "/mrsort.yaml", atomically: true, encoding: .utf8)
        try "not DICOM".write(toFile: root + "/junk.txt", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["MRSORT_MODELS"] = Paths.models
        let status = try run(Paths.mrsort, ["status", "--config", root + "/mrsort.yaml"])
        #expect(status.status == 66, "EX_NOINPUT")
        #expect(status.error.contains("no status yet: \(root)/state/status.json does not exist"), "\(status.error)")
        #expect(!status.error.contains("USAGE"))
        for command in ["classify", "inspect"] {
            let empty = try run(Paths.mrsort, [command, root + "/empty"], environment: environment)
            #expect(empty.status == 66, "\(command) on an empty folder: EX_NOINPUT")
            #expect(empty.error.contains("no files found in \(root)/empty"), "\(command): \(empty.error)")
            #expect(!empty.error.contains("USAGE"))
            let junk = try run(Paths.mrsort, [command, root + "/junk.txt"], environment: environment)
            #expect(junk.status == 65, "\(command) on a file that is not DICOM: EX_DATAERR")
            let nowhere = try run(Paths.mrsort, [command, root + "/nowhere"], environment: environment)
            #expect(nowhere.status == 66, "\(command) on a missing path: EX_NOINPUT")
            #expect(nowhere.error.contains("\(root)/nowhere: cannot read: No such file or directory"), "\(nowhere.error)")
        }
        let labels = try run(Paths.mrsort, ["eval", root + "/empty", "--labels", root + "/junk.txt"], environment: environment)
        #expect(labels.status == 65, "a labels.csv without its columns: EX_DATAERR")
        #expect(labels.error.contains("no \"dir\" column"), "\(labels.error)")
        let missing = try run(Paths.mrsort, ["check-config", root + "/missing.yaml"])
        #expect(missing.status == 66, "EX_NOINPUT")
        #expect(missing.error == "\(root)/missing.yaml: cannot read the configuration: No such file or directory\n")
        let noConfiguration = try run(Paths.mrsort, ["status", "--config", root + "/missing.yaml"])
        #expect(noConfiguration.status == 66, "EX_NOINPUT")
        let file = try #require(try Paths.realSeries("dcm_qa_decubitus__S2_t1_fl2d_sag").first)
        let json = try run(Paths.mrsort, ["inspect", "--json", file])
        #expect(json.output.contains("\"path\" : \"\(file)\""), "slashes as they are")
        #expect(!json.output.contains("\\/"))
    }

    @Test("check-config prints line:column errors and exits 78 (EX_CONFIG), as status and watch do on that file; --folders lists folders")
    func checkConfigCommand() throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "rules:\n  - name: a\n    watch: /nonexistent-mrsort\n    action: move\n    output: /o\n    quarantine: /q\n    colour: red\n"
            .write(toFile: root + "/bad.yaml", atomically: true, encoding: .utf8)
        let bad = try run(Paths.mrsort, ["check-config", root + "/bad.yaml"])
        #expect(bad.status == 78)
        #expect(bad.error.contains(root + "/bad.yaml:7:5: unknown key \"colour\""))
        #expect(bad.error.contains(root + "/bad.yaml:3:12: watch: folder /nonexistent-mrsort does not exist"))
        for command in [["watch", "--config", root + "/bad.yaml"], ["status", "--config", root + "/bad.yaml"]] {
            let refused = try run(Paths.mrsort, command)
            #expect(refused.status == 78, "\(command): EX_CONFIG")
            #expect(refused.error.contains("unknown key \"colour\""), "\(refused.error)")
            #expect(!refused.error.contains("USAGE"))
        }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try "state_directory: \(root)/state\nrules:\n  - name: a\n    watch: \(root)/in\n    action: move\n    output: \(root)/out\n    quarantine: \(root)/q\n"
            .write(toFile: root + "/good.yaml", atomically: true, encoding: .utf8)
        let good = try run(Paths.mrsort, ["check-config", root + "/good.yaml", "--folders"])
        #expect(good.status == 0)
        #expect(good.output.split(separator: "\n") == ["\(root)/state", "\(root)/in", "\(root)/out", "\(root)/q"])
    }
}

/// Runs a program to completion; its status, stdout and stderr.
func run(_ program: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil) throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.arguments = arguments
    if let environment { process.environment = environment }
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    let err = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}
