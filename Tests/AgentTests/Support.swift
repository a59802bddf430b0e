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

// The DICOM peers of the network tests; the same helpers as DICOMTests/Support.swift (test targets share no code).

/// A TCP port nothing listens on now (the kernel's pick; released at once, so it may rarely be taken meanwhile).
func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EADDRNOTAVAIL) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw POSIXError(.EADDRNOTAVAIL) }
    return UInt16(bigEndian: address.sin_port)
}

/// The bytes of a DICOM file's dataset: what follows the preamble, "DICM" and the meta header
/// (whose length is in its first element, (0002,0000) UL, explicit VR).
func datasetBytes(_ path: String) throws -> Data {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    guard data.count > 144, data[128..<132] == Data("DICM".utf8) else { throw POSIXError(.EINVAL) }
    let length = data[140..<144].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    return data[(144 + length)...]
}

/// A process started in the background (a DCMTK tool playing the peer), stopped by `stop()`.
final class BackgroundProcess {
    let process = Process()
    let log: String

    init(_ tool: String, _ arguments: [String], log: String) throws {
        self.log = log
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    /// SIGKILL: a child of the test runner may inherit a blocked SIGTERM.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}
