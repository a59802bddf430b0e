import Foundation
import Testing

/// Where the test inputs are and how to reach the independent DICOM tools.
enum Fixtures {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The labelled real DICOM series (`MRSORT_REALDATA`, else `../shared/realdata` beside the checkout).
    static var realData: String {
        if let path = ProcessInfo.processInfo.environment["MRSORT_REALDATA"] { return path }
        return repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/realdata").path
    }

    /// A file of a real-data series folder: the named one, else the first in name order.
    static func real(_ folder: String, _ name: String? = nil) throws -> String {
        let directory = realData + "/" + folder
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        let chosen = try #require(name.map { names.contains($0) ? $0 : nil } ?? names.first,
                                  "no file \(name ?? "") in \(directory)")
        return directory + "/" + chosen
    }

    /// The folders and series UIDs of labels.csv.
    static func labelledSeries() throws -> [(folder: String, seriesUID: String)] {
        let text = try String(contentsOfFile: realData + "/labels.csv", encoding: .utf8)
        let lines = text.split(whereSeparator: \.isNewline).map(String.init)
        let header = CSV.fields(lines[0])
        let dir = try #require(header.firstIndex(of: "dir")), uid = try #require(header.firstIndex(of: "series_uid"))
        return lines.dropFirst().map { CSV.fields($0) }.map { ($0[dir], $0[uid]) }
    }

    /// A new empty directory, removed by the caller.
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "mrsort-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Copies a file into a directory (writable, unlike the read-only real-data folder).
    static func copy(_ source: String, into directory: String, as name: String? = nil) throws -> String {
        let target = directory + "/" + (name ?? (source as NSString).lastPathComponent)
        try FileManager.default.copyItem(atPath: source, toPath: target)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: target)
        return target
    }
}

enum CSV {
    /// Splits one CSV line, honouring double quotes.
    static func fields(_ line: String) -> [String] {
        var fields: [String] = [], current = "", quoted = false
        var characters = line.makeIterator()
        while let c = characters.next() {
            switch c {
            case "\"" where quoted: quoted = false
            case "\"": quoted = true
            case "," where !quoted: fields.append(current); current = ""
            default: current.append(c)
            }
        }
        fields.append(current)
        return fields
    }
}

/// Runs a command-line tool and returns its output.
struct Tool {
    struct Failure: Error, CustomStringConvertible {
        let command: String
        let status: Int32
        let stderr: String
        var description: String { "\(command) exited \(status): \(stderr)" }
    }

    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(command: ([tool] + arguments).joined(separator: " "), status: process.terminationStatus,
                          stderr: String(decoding: errorData, as: UTF8.self))
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// DCMTK's dcmdump as the independent reader the tests compare against.
enum DCMDump {
    /// One dumped element: tag path (e.g. "(5200,9230).(0020,9113).(0020,0032)"), VR and value text.
    struct Element {
        let path: String
        let vr: String
        /// The value as dcmdump prints it, without brackets; nil for "(no value available)".
        let value: String?

        var strings: [String]? {
            // Spaces and NULs are DICOM padding.
            let padding = CharacterSet.whitespaces.union(CharacterSet(charactersIn: "\0"))
            return value.map { $0.split(separator: "\\", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: padding) } }
        }
        var numbers: [Double]? { strings?.compactMap { Double($0) } }
    }

    /// Top-level elements of the dataset (and meta header), keyed by "(gggg,eeee)" in lower case.
    static func topLevel(_ path: String) throws -> [String: Element] {
        var result: [String: Element] = [:]
        for line in try Tool.run("dcmdump", ["-q", "+L", path]).split(separator: "\n") where line.hasPrefix("(") {
            if let element = parse(String(line)) { result[element.path] = element }
        }
        return result
    }

    /// Every occurrence of a tag, nested ones with their sequence path, in file order.
    static func search(_ tag: String, in path: String) throws -> [Element] {
        try Tool.run("dcmdump", ["-q", "+L", "+p", "+P", tag.trimmingCharacters(in: CharacterSet(charactersIn: "()")), path]).split(separator: "\n").compactMap { parse(String($0)) }
    }

    static func parse(_ line: String) -> Element? {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        guard let space = trimmed.firstIndex(of: " ") else { return nil }
        let path = String(trimmed[..<space]).lowercased()
        let rest = trimmed[trimmed.index(after: space)...]
        let vr = String(rest.prefix(2))
        var body = rest.dropFirst(2).drop { $0 == " " }
        if body.hasPrefix("(no value available)") { return Element(path: path, vr: vr, value: nil) }
        if body.hasPrefix("[") {
            body = body.dropFirst()
            guard let close = body.lastIndex(of: "]") else { return nil }
            return Element(path: path, vr: vr, value: String(body[..<close]))
        }
        let value = body.prefix { $0 != "#" }.trimmingCharacters(in: .whitespaces)
        return Element(path: path, vr: vr, value: value)
    }

    /// The stored pixel bytes of an uncompressed file, as dcmdump writes them (+W).
    static func pixelBytes(_ path: String) throws -> Data {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Tool.run("dcmdump", ["-q", "+W", directory, path])
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".raw") }
        let raw = try #require(files.first, "dcmdump wrote no pixel data for \(path)")
        return try Data(contentsOf: URL(fileURLWithPath: directory + "/" + raw))
    }
}

/// A TCP port nothing listens on now (the kernel's pick; released at once, so it may rarely be taken meanwhile).
func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw Tool.Failure(command: "socket", status: errno, stderr: "") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw Tool.Failure(command: "bind", status: errno, stderr: "") }
    return UInt16(bigEndian: address.sin_port)
}

/// The bytes of a DICOM file's dataset: what follows the preamble, "DICM" and the meta header
/// (whose length is in its first element, (0002,0000) UL, explicit VR).
func datasetBytes(_ path: String) throws -> Data {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    guard data.count > 144, data[128..<132] == Data("DICM".utf8) else { throw Tool.Failure(command: "read \(path)", status: 0, stderr: "not a Part 10 file") }
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
