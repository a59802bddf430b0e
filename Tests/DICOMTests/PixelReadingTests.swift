import Foundation
import Testing
@testable import DICOM

@Suite("Pixel frames")
struct PixelReadingTests {
    static let emri = "pydicom-data__S301_emri_small_mf"

    /// All frames of a file, decoded after the modality LUT.
    static func frames(_ path: String) throws -> [PixelFrame] {
        let file = try DICOMFile.open(path, headerOnly: false)
        return try file.imageHeaders().map { header throws(DICOMError) in try file.frame(header.frame, header: header) }
    }

    /// Stored values from dcmdump's raw pixel dump of an uncompressed little-endian file.
    static func storedValues(_ path: String, signed: Bool) throws -> [Float] {
        let bytes = try DCMDump.pixelBytes(path)
        return stride(from: 0, to: bytes.count - 1, by: 2).map { offset in
            let raw = UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
            return signed ? Float(Int16(bitPattern: raw)) : Float(raw)
        }
    }

    @Test("Uncompressed frames equal dcmdump's stored values × RescaleSlope + RescaleIntercept",
          arguments: [(emri, "emri_small.dcm", 10), ("pydicom-data__S1_MR2_UNCR", "MR2_UNCR.dcm", 1),
                      ("pydicom-data__S1_MR2_UNCR", "MR2_UNCI.dcm", 1)])
    func uncompressedMatchesDCMDump(folder: String, name: String, frameCount: Int) throws {
        let path = try Fixtures.real(folder, name)
        let dump = try DCMDump.topLevel(path)
        let slope = Float(dump["(0028,1053)"]?.numbers?.first ?? 1)
        let intercept = Float(dump["(0028,1052)"]?.numbers?.first ?? 0)
        let stored = try Self.storedValues(path, signed: false)
        let frames = try Self.frames(path)
        #expect(frames.count == frameCount)
        let decoded = frames.flatMap(\.values), expected = stored.map { $0 * slope + intercept }
        #expect(decoded.count == expected.count)
        #expect(decoded == expected, "\(zip(decoded, expected).filter { $0 != $1 }.count) values differ")
    }

    @Test("Signed 16-bit pixels keep their sign")
    func signedPixels() throws {
        let path = try Fixtures.real("dcm_qa_fmap__S2_B0Map_GRE", "i100243.MRDC.59")
        let dump = try DCMDump.topLevel(path)
        #expect(dump["(0028,0103)"]?.numbers == [1])
        let stored = try Self.storedValues(path, signed: true)
        #expect(stored.contains { $0 < 0 })
        let slope = Float(dump["(0028,1053)"]?.numbers?.first ?? 1)
        let intercept = Float(dump["(0028,1052)"]?.numbers?.first ?? 0)
        let decoded = try Self.frames(path).flatMap(\.values), expected = stored.map { $0 * slope + intercept }
        #expect(decoded == expected, "\(zip(decoded, expected).filter { $0 != $1 }.count) of \(expected.count) values differ")
    }

    @Test("The same image in big-endian, RLE and JPEG-LS encodings decodes to the same values",
          arguments: ["emri_small_big_endian.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm"])
    func encodingsAgree(name: String) throws {
        let reference = try Self.frames(try Fixtures.real(Self.emri, "emri_small.dcm"))
        let decoded = try Self.frames(try Fixtures.real(Self.emri, name))
        #expect(decoded.count == reference.count)
        #expect(decoded == reference, "decoded frames differ from the uncompressed reference")
    }

    @Test("JPEG lossless and extended (12-bit) made by dcmcjpeg decode as DCMTK's dcmdjpeg does",
          arguments: [["+e1"], ["+el"], ["+ee"]])
    func jpeg(options: [String]) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let source = try Fixtures.real("dcm_qa_decubitus__S2_t1_fl2d_sag")
        let compressed = directory + "/compressed.dcm", decompressed = directory + "/decompressed.dcm"
        try Tool.run("dcmcjpeg", options + [source, compressed])
        try Tool.run("dcmdjpeg", [compressed, decompressed])
        let expected = try Self.frames(decompressed)
        let decoded = try Self.frames(compressed)
        #expect(decoded == expected, "decoded frames differ from dcmdjpeg's")
        if options != ["+ee"] { #expect(decoded == (try Self.frames(source)), "lossless must be exact") }
    }

    @Test("JPEG baseline (8-bit, as img2dcm wraps a JPEG) decodes as dcmj2pnm does")
    func jpegBaseline() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let source = try Fixtures.real("dcm_qa_decubitus__S2_t1_fl2d_sag")
        let jpeg = directory + "/slice.jpg", dicom = directory + "/baseline.dcm", pgm = directory + "/slice.pgm"
        try Tool.run("dcmj2pnm", ["+oj", "+Wm", source, jpeg])
        try Tool.run("img2dcm", ["-i", "JPEG", jpeg, dicom])
        #expect(try DICOMFile.open(dicom).transferSyntaxUID == "1.2.840.10008.1.2.4.50")
        try Tool.run("dcmj2pnm", ["+op", "--no-windowing", dicom, pgm])
        let expected = try PortableGraymap.read(pgm)
        let frame = try #require(try Self.frames(dicom).first)
        #expect(frame.rows == expected.height && frame.columns == expected.width)
        #expect(frame.luminance() == expected.values, "decoded pixels differ from dcmj2pnm's")
    }

    @Test("RGB pixels (a secondary capture made by img2dcm from a BMP) read as written")
    func rgb() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let width = 7, height = 5
        var rgb: [UInt8] = []
        for y in 0..<height { for x in 0..<width { rgb += [UInt8(x * 30), UInt8(y * 50), UInt8(255 - x * y)] } }
        let bmp = directory + "/screen.bmp", dicom = directory + "/screen.dcm"
        try Bitmap.write(rgb: rgb, width: width, height: height, to: bmp)
        try Tool.run("img2dcm", ["-i", "BMP", bmp, dicom])
        let frame = try #require(try Self.frames(dicom).first)
        #expect(frame.samplesPerPixel == 3 && frame.photometricInterpretation == "RGB")
        #expect(frame.values == rgb.map(Float.init))
        let luma = frame.luminance()
        #expect(luma.count == width * height)
        #expect(abs(luma[1] - (0.299 * 30 + 0.587 * 0 + 0.114 * 255)) < 1e-3)
    }

    @Test("JPEG 2000 is refused with a typed error that says so; its header still reads",
          arguments: ["emri_small_jpeg_2k_lossless.dcm"])
    func jpeg2000(name: String) throws {
        let path = try Fixtures.real(Self.emri, name)
        let headers = try ImageHeader.read(from: path)
        #expect(headers.count == 10)
        let file = try DICOMFile.open(path, headerOnly: false)
        #expect {
            try file.frame(0, header: headers[0])
        } throws: { error in
            guard case DICOMError.unsupportedTransferSyntax(let errorPath, let reason) = error else { return false }
            return errorPath == path && reason.contains("JPEG 2000")
        }
    }

    @Test("A frame beyond NumberOfFrames is a typed error")
    func frameOutOfRange() throws {
        let path = try Fixtures.real(Self.emri, "emri_small.dcm")
        let file = try DICOMFile.open(path, headerOnly: false)
        let header = try #require(try file.imageHeaders().first)
        #expect(throws: DICOMError.frameOutOfRange(path: path, frame: 10, frames: 10)) {
            try file.frame(10, header: header)
        }
    }

    @Test("A header-only file refuses to decode pixels")
    func headerOnlyRefuses() throws {
        let path = try Fixtures.real(Self.emri, "emri_small.dcm")
        let file = try DICOMFile.open(path, headerOnly: true)
        let header = try #require(try file.imageHeaders().first)
        #expect(throws: DICOMError.self) { try file.frame(0, header: header) }
    }
}

/// Reads binary PGM (P5) files, as dcmj2pnm writes them.
enum PortableGraymap {
    static func read(_ path: String) throws -> (width: Int, height: Int, values: [Float]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        var fields: [String] = [], index = data.startIndex, current = ""
        while fields.count < 4, index < data.endIndex {
            let byte = data[index]
            index += 1
            if byte == UInt8(ascii: "#") {
                while index < data.endIndex, data[index] != 10 { index += 1 }
            } else if byte == 10 || byte == 13 || byte == 32 || byte == 9 {
                if !current.isEmpty { fields.append(current); current = "" }
            } else {
                current.append(Character(Unicode.Scalar(byte)))
            }
        }
        let width = try #require(Int(fields[1])), height = try #require(Int(fields[2]))
        #expect(fields[0] == "P5" && fields[3] == "255")
        return (width, height, data[index...].prefix(width * height).map(Float.init))
    }
}

/// Writes 24-bit BMP files (bottom-up rows, BGR, rows padded to 4 bytes).
enum Bitmap {
    static func write(rgb: [UInt8], width: Int, height: Int, to path: String) throws {
        let rowSize = (width * 3 + 3) / 4 * 4
        let imageSize = rowSize * height
        var data = Data()
        func le32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { data.append(contentsOf: $0) } }
        func le16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { data.append(contentsOf: $0) } }
        data.append(contentsOf: [UInt8(ascii: "B"), UInt8(ascii: "M")])
        le32(54 + imageSize); le32(0); le32(54)
        le32(40); le32(width); le32(height); le16(1); le16(24); le32(0); le32(imageSize); le32(2835); le32(2835); le32(0); le32(0)
        for y in (0..<height).reversed() {
            var row: [UInt8] = []
            for x in 0..<width {
                let i = (y * width + x) * 3
                row += [rgb[i + 2], rgb[i + 1], rgb[i]]
            }
            row += [UInt8](repeating: 0, count: rowSize - row.count)
            data.append(contentsOf: row)
        }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
