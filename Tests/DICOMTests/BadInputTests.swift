import Foundation
import Testing
@testable import DICOM

/// Every kind of bad input gives a typed error that names the file, and nothing crashes.
@Suite("Bad input")
struct BadInputTests {
    static let sample = "dcm_qa_decubitus__S2_t1_fl2d_sag"

    /// Runs `body` in a fresh directory holding a copy of a real file.
    static func withCopy(_ body: (_ directory: String, _ path: String) throws -> Void) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(directory, try Fixtures.copy(try Fixtures.real(sample), into: directory, as: "image.dcm"))
    }

    static func expectError(reading path: String, headerOnly: Bool = true,
                            _ matches: (DICOMError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let file = try DICOMFile.open(path, headerOnly: headerOnly)
            _ = try file.imageHeaders()
            Issue.record("\(path) was accepted", sourceLocation: sourceLocation)
        } catch {
            #expect(error.path == path, sourceLocation: sourceLocation)
            #expect(error.description.hasPrefix(path + ": "), sourceLocation: sourceLocation)
            #expect(matches(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func textFileIsNotDICOM() throws {
        try Self.withCopy { directory, _ in
            let path = directory + "/README.txt"
            try Data(String(repeating: "plain text, no DICOM here\n", count: 20).utf8).write(to: URL(fileURLWithPath: path))
            Self.expectError(reading: path) { if case .notDICOM = $0 { true } else { false } }
        }
    }

    @Test func emptyFileIsNotDICOM() throws {
        try Self.withCopy { directory, _ in
            let path = directory + "/empty.dcm"
            #expect(FileManager.default.createFile(atPath: path, contents: Data()))
            Self.expectError(reading: path) { if case .notDICOM(_, let reason) = $0 { reason.contains("empty") } else { false } }
        }
    }

    @Test func truncatedInsideTheHeader() throws {
        try Self.withCopy { directory, path in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let cut = directory + "/cut.dcm"
            try bytes.prefix(2000).write(to: URL(fileURLWithPath: cut))
            Self.expectError(reading: cut) { if case .truncated = $0 { true } else { false } }
        }
    }

    @Test func truncatedInsideThePixelData() throws {
        try Self.withCopy { directory, path in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let cut = directory + "/cut.dcm"
            try bytes.prefix(bytes.count - 5000).write(to: URL(fileURLWithPath: cut))
            // The header is whole, so a header-only read succeeds; reading pixels must not.
            #expect(try ImageHeader.read(from: cut).count == 1)
            Self.expectError(reading: cut, headerOnly: false) { if case .truncated = $0 { true } else { false } }
        }
    }

    @Test(arguments: [("(0020,000E)", "SeriesInstanceUID"), ("(0008,0018)", "SOPInstanceUID"), ("(0020,000D)", "StudyInstanceUID")])
    func missingUID(tag: String, name: String) throws {
        try Self.withCopy { _, path in
            try Tool.run("dcmodify", ["-nb", "-ea", tag, path])
            Self.expectError(reading: path) { error in
                if case .missingAttribute(_, let attribute, _) = error { attribute == name } else { false }
            }
        }
    }

    @Test func unknownTransferSyntax() throws {
        try Self.withCopy { _, path in
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let explicitLittle = Data("1.2.840.10008.1.2.1".utf8)
            let range = try #require(bytes.range(of: explicitLittle, in: 128..<min(bytes.count, 1024)))
            bytes.replaceSubrange(range, with: Data("1.2.840.99999.9.9.9".utf8))
            try bytes.write(to: URL(fileURLWithPath: path))
            Self.expectError(reading: path) { error in
                if case .unsupportedTransferSyntax(_, let reason) = error { reason.contains("1.2.840.99999.9.9.9") } else { false }
            }
        }
    }

    @Test func directory() throws {
        try Self.withCopy { directory, _ in
            Self.expectError(reading: directory) { $0 == .isDirectory(path: directory) }
        }
    }

    @Test func missingFile() throws {
        try Self.withCopy { directory, _ in
            let path = directory + "/gone.dcm"
            Self.expectError(reading: path) { if case .unreadable(_, let reason) = $0 { reason.contains("No such file") } else { false } }
        }
    }

    @Test func namedPipeIsNotARegularFile() throws {
        try Self.withCopy { directory, _ in
            let path = directory + "/pipe"
            #expect(mkfifo(path, 0o600) == 0)
            Self.expectError(reading: path) { if case .unreadable(_, let reason) = $0 { reason.contains("regular") } else { false } }
        }
    }

    @Test func discoverySkipsPartialAndHiddenNames() throws {
        try Self.withCopy { directory, path in
            for name in [".hidden.dcm", "upload.dcm.part", "upload.partial", "x.tmp", AtomicRewrite.temporaryPrefix + "image.dcm.abc"] {
                try FileManager.default.copyItem(atPath: path, toPath: directory + "/" + name)
            }
            try FileManager.default.createDirectory(atPath: directory + "/sub", withIntermediateDirectories: false)
            try FileManager.default.copyItem(atPath: path, toPath: directory + "/sub/deep.dcm")
            #expect(try DICOMFileDiscovery.files(in: [directory]) == [path, directory + "/sub/deep.dcm"])
        }
    }
}
