import Foundation

enum Paths {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static let models = repositoryRoot + "/models"
    static let exampleConfiguration = repositoryRoot + "/etc/mrsort/mrsort.yaml"

    static var realData: String {
        ProcessInfo.processInfo.environment["MRSORT_REALDATA"]
            ?? URL(fileURLWithPath: repositoryRoot).deletingLastPathComponent().appendingPathComponent("shared/realdata").path
    }

    /// The `mrsort` executable that `swift test` built beside the test bundle.
    static var mrsort: String {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for _ in 0..<6 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("mrsort").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return repositoryRoot + "/.build/debug/mrsort"
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "mrsort-agent-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A real series' files from the shared set.
    static func realSeries(_ name: String) throws -> [String] {
        let folder = realData + "/" + name
        return try FileManager.default.contentsOfDirectory(atPath: folder).sorted().map { folder + "/" + $0 }
    }
}

/// Waits until `condition` holds or `seconds` pass; returns whether it held.
func eventually(_ seconds: Double, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        try? await Task.sleep(nanoseconds: 100_000_000)
    }
    return try condition()
}

/// Every regular file under `folder`, hidden ones included.
func allFiles(under folder: String) -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: folder) else { return [] }
    var result: [String] = []
    while let relative = enumerator.nextObject() as? String {
        var isDirectory: ObjCBool = false
        let path = folder + "/" + relative
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue { result.append(path) }
    }
    return result.sorted()
}
