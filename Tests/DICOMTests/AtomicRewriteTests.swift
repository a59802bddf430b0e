import Foundation
import Testing
@testable import DICOM

@Suite("Atomic rewrite")
struct AtomicRewriteTests {
    /// dcmdump's lines without the length comments, the item and sequence delimiters and the
    /// group lengths: what a rewrite must keep, whatever length encoding DCMTK writes
    /// (group lengths are derived from the values and recalculated on write). Indentation,
    /// which shows nesting, is kept.
    static func normalizedDump(_ path: String) throws -> [String] {
        try Tool.run("dcmdump", ["-q", "+L", path]).split(separator: "\n").compactMap { line -> String? in
            let text = String(line)
            let tag = text.trimmingCharacters(in: .whitespaces).prefix(11)
            if tag == "(fffe,e00d)" || tag == "(fffe,e0dd)" || tag.hasSuffix(",0000)") { return nil }
            if tag == "(fffe,e000)" { return text.prefix { $0 == " " } + "(fffe,e000) item" }
            var value = text.split(separator: "#", maxSplits: 1).first.map(String.init) ?? text
            while value.hasSuffix(" ") { value.removeLast() }
            return value.replacingOccurrences(of: "(Sequence with explicit length", with: "(Sequence")
                .replacingOccurrences(of: "(Sequence with undefined length", with: "(Sequence")
        }
    }

    /// The dump without the top-level Original Attributes Sequence and everything nested in it.
    static func withoutHistory(_ dump: [String]) -> [String] {
        guard let start = dump.firstIndex(where: { $0.hasPrefix("(0400,0561)") }) else { return dump }
        let end = dump[(start + 1)...].firstIndex { !$0.hasPrefix(" ") } ?? dump.endIndex
        return Array(dump[..<start] + dump[end...])
    }

    static func files(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    @Test("Rewriting SeriesDescription changes only that tag and the Original Attributes Sequence",
          arguments: [
              ("dcm_qa_decubitus__S2_t1_fl2d_sag", nil as String?),                   // explicit VR LE, Siemens
              ("dcm_qa_fmap__S2_B0Map_GRE", nil),                                     // implicit VR LE, GE
              ("dcm_qa_philips_enh__S2001_fcMRI_Field_Mapping_mf", nil),              // enhanced multi-frame
              ("pydicom-data__S301_emri_small_mf", "emri_small_jpeg_ls_lossless.dcm"), // compressed
              ("pydicom-data__S301_emri_small_mf", "emri_small_big_endian.dcm"),
          ])
    func rewriteKeepsEverythingElse(folder: String, name: String?) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = try Fixtures.copy(try Fixtures.real(folder, name), into: directory)
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        let before = try Self.normalizedDump(path)
        let originalDescription = try DCMDump.topLevel(path)["(0008,103e)"]?.value ?? ""
        let transferSyntax = try DICOMFile.open(path).transferSyntaxUID
        let framesBefore = try PixelReadingTests.frames(path)

        try AtomicRewrite(changes: [.seriesDescription: "mrsort t1_pre sagittal"]).apply(to: path)

        let after = try Self.normalizedDump(path)
        let descriptionLine = try #require(before.firstIndex { $0.hasPrefix("(0008,103e)") })
        var expected = before
        expected[descriptionLine] = "(0008,103e) LO [mrsort t1_pre sagittal]"
        #expect(Self.withoutHistory(after) == expected)
        #expect(after.count > expected.count, "the Original Attributes Sequence is missing")

        let history = try DCMDump.search("0008,103e", in: path).first { $0.path == "(0400,0561).(0400,0550).(0008,103e)" }
        #expect(history?.value ?? "" == originalDescription)
        #expect(try DCMDump.search("0400,0563", in: path).first?.value == "mrsort")
        #expect(try DCMDump.search("0400,0565", in: path).first?.value == "CORRECT")

        #expect(try DICOMFile.open(path).transferSyntaxUID == transferSyntax)
        #expect(try PixelReadingTests.frames(path) == framesBefore, "pixel values changed")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o640)
        #expect(try Self.files(in: directory) == [(path as NSString).lastPathComponent], "a temporary file was left")
    }

    @Test("Uncompressed pixel bytes are byte-identical after a rewrite")
    func pixelBytesUnchanged() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = try Fixtures.copy(try Fixtures.real("dcm_qa_decubitus__S2_t1_fl2d_sag"), into: directory)
        let before = try DCMDump.pixelBytes(path)
        try AtomicRewrite(changes: [.seriesDescription: "x"]).apply(to: path)
        #expect(try DCMDump.pixelBytes(path) == before)
    }

    @Test("A crash between writing the temporary file and the rename leaves the original intact and readable")
    func crashBeforeRename() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = try Fixtures.copy(try Fixtures.real("dcm_qa_decubitus__S2_t1_fl2d_sag"), into: directory)
        let originalBytes = try Data(contentsOf: URL(fileURLWithPath: path))

        // prepare() is everything up to the rename; stopping here is what a crash at that point leaves.
        let prepared = try AtomicRewrite(changes: [.seriesDescription: "new"]).prepare(path)

        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == originalBytes)
        #expect(try ImageHeader.read(from: path).first?.seriesDescription == "t1_fl2d_sag")
        let temporaryName = (prepared.temporary as NSString).lastPathComponent
        #expect(temporaryName.hasPrefix(AtomicRewrite.temporaryPrefix))
        #expect(DICOMFileDiscovery.isIgnored(name: temporaryName), "watchers must not pick up the temporary file")
        #expect(try ImageHeader.read(from: prepared.temporary).first?.seriesDescription == "new", "the temporary file is complete")
        #expect(try DICOMFileDiscovery.files(in: [directory]) == [path])

        prepared.abandon()
        #expect(try Self.files(in: directory) == [(path as NSString).lastPathComponent])
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == originalBytes)
    }

    @Test("Rewriting a file that is not DICOM fails, names the file, and changes nothing")
    func rewriteRefusesNonDICOM() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/notes.txt"
        try Data("not an image\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect {
            try AtomicRewrite(changes: [.seriesDescription: "x"]).apply(to: path)
        } throws: { error in
            guard case DICOMError.notDICOM(let errorPath, _) = error else { return false }
            return errorPath == path
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "not an image\n")
        #expect(try Self.files(in: directory) == ["notes.txt"])
    }
}
