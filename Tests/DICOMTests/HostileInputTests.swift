import Foundation
import Testing
@testable import DICOM

/// Files cut or crafted to make the reader accept half a file, crash or exhaust memory (issues 25
/// and 28): each is refused with a typed error that names the file, and the process survives.
@Suite("Hostile input")
struct HostileInputTests {
    static func isTruncated(_ error: DICOMError, mentioning text: String) -> Bool {
        if case .truncated(_, let reason) = error { reason.contains(text) } else { false }
    }

    static func isBadPixelData(_ error: DICOMError, mentioning texts: String...) -> Bool {
        if case .badPixelData(_, let reason) = error { texts.allSatisfy { reason.contains($0) } } else { false }
    }

    static func write(_ bytes: Data, to path: String) throws {
        try bytes.write(to: URL(fileURLWithPath: path))
    }

    // MARK: Completeness at the pixel-data boundary

    @Test("A file cut exactly where its PixelData starts is truncated; the whole file still opens")
    func cutAtThePixelDataTag() throws {
        try BadInputTests.withCopy { directory, path in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let offset = try #require(PixelDataLocation.offset(in: bytes), "no PixelData element in \(path)")
            _ = try DICOMFile.open(path, headerOnly: false).imageHeaders()

            let cut = directory + "/cut.dcm"
            try Self.write(bytes.prefix(offset), to: cut)
            BadInputTests.expectError(reading: cut, headerOnly: false) {
                Self.isTruncated($0, mentioning: "ends before its pixel data (7FE0,0010)")
            }
            // What a header-only read needs is all there.
            #expect(try ImageHeader.read(from: cut).count == 1)
        }
    }

    @Test("A file cut between two elements of its header is truncated: its meta header names an image class")
    func cutBetweenHeaderElements() throws {
        try BadInputTests.withCopy { directory, path in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            // (0028,0010) Rows, US, explicit little endian: the start of an element, well before the pixels.
            let rows = Data([0x28, 0x00, 0x10, 0x00, 0x55, 0x53, 0x02, 0x00])
            let offset = try #require(bytes.range(of: rows)?.lowerBound)
            let cut = directory + "/cut.dcm"
            try Self.write(bytes.prefix(offset), to: cut)
            BadInputTests.expectError(reading: cut, headerOnly: false) {
                Self.isTruncated($0, mentioning: "ends before its pixel data (7FE0,0010)")
            }
        }
    }

    @Test("A file cut a little way into its native pixel data is truncated, naming the pixel data")
    func cutJustInsideNativePixelData() throws {
        try BadInputTests.withCopy { directory, path in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let offset = try #require(PixelDataLocation.offset(in: bytes))
            let cut = directory + "/cut.dcm"
            try Self.write(bytes.prefix(offset + 12 + 1000), to: cut)
            BadInputTests.expectError(reading: cut, headerOnly: false) {
                Self.isTruncated($0, mentioning: "pixel data (7FE0,0010)")
            }
        }
    }

    @Test("An encapsulated (JPEG) file cut inside a fragment, or before its sequence delimiter, is truncated",
          arguments: [("inside the last fragment", 8 + 40), ("before the sequence delimitation item", 8)])
    func cutInsideEncapsulatedPixelData(case name: String, dropped: Int) throws {
        try BadInputTests.withCopy { directory, path in
            let jpeg = directory + "/jpeg.dcm"
            try Tool.run("dcmcjpeg", [path, jpeg])
            _ = try DICOMFile.open(jpeg, headerOnly: false).imageHeaders()
            let bytes = try Data(contentsOf: URL(fileURLWithPath: jpeg))
            // The file ends with the sequence delimitation item (FFFE,E0DD) and its zero length.
            #expect(bytes.suffix(8) == Data([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]))
            let cut = directory + "/cut.dcm"
            try Self.write(bytes.prefix(bytes.count - dropped), to: cut)
            BadInputTests.expectError(reading: cut, headerOnly: false) {
                Self.isTruncated($0, mentioning: "pixel data (7FE0,0010)")
            }
        }
    }

    @Test("Every file of every real series opens whole, pixel data included, as the agent reads it")
    func everyRealFileOpensWhole() throws {
        for (folder, _) in try Fixtures.labelledSeries() {
            for file in try DICOMFileDiscovery.files(in: [Fixtures.realData + "/" + folder]) {
                // pydicom's test data holds one file cut short on purpose.
                if file.hasSuffix("_too_short.dcm") {
                    BadInputTests.expectError(reading: file, headerOnly: false) {
                        Self.isTruncated($0, mentioning: "ends inside the pixel data (7FE0,0010)")
                    }
                    continue
                }
                #expect(throws: Never.self, "\(file)") { _ = try DICOMFile.open(file, headerOnly: false).imageHeaders() }
            }
        }
    }

    // MARK: Deeply nested sequences

    @Test("Sequences nested thousands deep are refused before DCMTK's recursive parser sees them",
          arguments: NestedSequences.Encoding.allCases)
    func deepNesting(encoding: NestedSequences.Encoding) throws {
        try BadInputTests.withCopy { directory, _ in
            let path = directory + "/nested.dcm"
            try Self.write(NestedSequences.file(depth: 7_000, encoding: encoding, definedLengths: false), to: path)
            for headerOnly in [true, false] {
                BadInputTests.expectError(reading: path, headerOnly: headerOnly) { error in
                    if case .malformed(_, let reason) = error { reason.contains("nested 65 deep") && reason.contains("limit 64") } else { false }
                }
            }
        }
    }

    @Test("Nesting inside defined-length sequences counts too, where implicit VR hides that they are sequences",
          arguments: NestedSequences.Encoding.allCases)
    func deepNestingWithDefinedLengths(encoding: NestedSequences.Encoding) throws {
        try BadInputTests.withCopy { directory, _ in
            let path = directory + "/nested.dcm"
            try Self.write(NestedSequences.file(depth: 200, encoding: encoding, definedLengths: true), to: path)
            BadInputTests.expectError(reading: path, headerOnly: false) { error in
                if case .malformed(_, let reason) = error { reason.contains("limit 64") } else { false }
            }
        }
    }

    @Test("Nesting within the limit reads as before", arguments: NestedSequences.Encoding.allCases)
    func moderateNesting(encoding: NestedSequences.Encoding) throws {
        try BadInputTests.withCopy { directory, _ in
            for definedLengths in [false, true] {
                let path = directory + "/nested-\(definedLengths).dcm"
                try Self.write(NestedSequences.file(depth: 40, encoding: encoding, definedLengths: definedLengths), to: path)
                let headers = try DICOMFile.open(path, headerOnly: false).imageHeaders()
                #expect(headers.map(\.sopInstanceUID) == [NestedSequences.instanceUID])
            }
        }
    }

    @Test("A deflated dataset is walked inflated: deep nesting in it is refused, moderate nesting reads")
    func deflatedNesting() throws {
        try BadInputTests.withCopy { directory, _ in
            for (depth, refused) in [(100, true), (40, false)] {
                let plain = directory + "/plain-\(depth).dcm", deflated = directory + "/deflated-\(depth).dcm"
                try Self.write(NestedSequences.file(depth: depth, encoding: .explicitLittle, definedLengths: false), to: plain)
                try Tool.run("dcmconv", ["+td", plain, deflated])
                if refused {
                    BadInputTests.expectError(reading: deflated, headerOnly: false) { error in
                        if case .malformed(_, let reason) = error { reason.contains("limit 64") } else { false }
                    }
                } else {
                    #expect(try DICOMFile.open(deflated, headerOnly: false).imageHeaders().count == 1)
                }
            }
        }
    }

    // MARK: Crafted NumberOfFrames

    @Test("A NumberOfFrames the file cannot hold is refused, naming the numbers, before any per-frame allocation",
          arguments: ["2000000000", "2000000"])
    func craftedNumberOfFrames(frames: String) throws {
        try BadInputTests.withCopy { _, path in
            try Tool.run("dcmodify", ["-nb", "-i", "(0028,0008)=\(frames)", path])
            for headerOnly in [true, false] {
                BadInputTests.expectError(reading: path, headerOnly: headerOnly) {
                    Self.isBadPixelData($0, mentioning: "NumberOfFrames (0028,0008) \(frames)")
                }
            }
        }
    }

    @Test("An encapsulated file needs a fragment per frame")
    func moreFramesThanFragments() throws {
        try BadInputTests.withCopy { directory, path in
            let jpeg = directory + "/jpeg.dcm"
            try Tool.run("dcmcjpeg", [path, jpeg])
            try Tool.run("dcmodify", ["-nb", "-i", "(0028,0008)=3", jpeg])
            BadInputTests.expectError(reading: jpeg, headerOnly: false) {
                Self.isBadPixelData($0, mentioning: "NumberOfFrames (0028,0008) 3", "holds: 1 fragment")
            }
        }
    }

    // MARK: Crafted image size

    @Test("A JPEG file claiming 65535 x 65535 pixels is refused before decoding")
    func craftedImageSizeCompressed() throws {
        try BadInputTests.withCopy { directory, path in
            let jpeg = directory + "/jpeg.dcm"
            try Tool.run("dcmcjpeg", [path, jpeg])
            try Tool.run("dcmodify", ["-nb", "-m", "(0028,0010)=65535", "-m", "(0028,0011)=65535", jpeg])
            BadInputTests.expectError(reading: jpeg, headerOnly: false) {
                Self.isBadPixelData($0, mentioning: "65535 x 65535 x 1 x 16 bits", "limit of \(DICOMFile.maximumDecodedFrameBytes)")
            }
        }
    }

    @Test("A native file claiming 65535 x 65535 pixels is refused: its frame size does not fit the ceiling or the data")
    func craftedImageSizeNative() throws {
        try BadInputTests.withCopy { _, path in
            try Tool.run("dcmodify", ["-nb", "-m", "(0028,0010)=65535", "-m", "(0028,0011)=65535", path])
            BadInputTests.expectError(reading: path, headerOnly: false) { Self.isBadPixelData($0, mentioning: "65535 x 65535") }
            // The largest ceiling the shim takes (4 GiB) does not let an 8 GiB frame through either.
            #expect(throws: DICOMError.self) { try DICOMFile.open(path, headerOnly: false, maximumDecodedFrameBytes: 1 << 40) }
        }
    }

    @Test("The frame ceiling is a parameter: a real frame over a small ceiling is refused at open")
    func frameCeilingParameter() throws {
        try BadInputTests.withCopy { _, path in
            let refusal = Result { () throws(DICOMError) in try DICOMFile.open(path, headerOnly: false, maximumDecodedFrameBytes: 1024) }
            switch refusal {
            case .success: Issue.record("a frame over a 1024-byte ceiling was accepted")
            case .failure(let error): #expect(Self.isBadPixelData(error, mentioning: "more than the limit of 1024"), "\(error)")
            }
            // Header-only reads decode nothing and are not limited.
            let headers = try DICOMFile.open(path, headerOnly: true, maximumDecodedFrameBytes: 1024).imageHeaders()
            #expect(headers.count == 1)
        }
    }
}

/// Where the PixelData element of a file starts, found by its tag and confirmed by its length
/// reaching the end of the file (or by an undefined length).
enum PixelDataLocation {
    static func offset(in bytes: Data) -> Int? {
        let tag = Data([0xE0, 0x7F, 0x10, 0x00])
        var searchFrom = bytes.startIndex
        while let range = bytes.range(of: tag, in: searchFrom..<bytes.endIndex) {
            let start = range.lowerBound
            searchFrom = start + 1
            guard start + 12 <= bytes.endIndex else { break }
            let vr = String(decoding: bytes[(start + 4)..<(start + 6)], as: UTF8.self)
            if vr == "OW" || vr == "OB" {
                let length = UInt32(littleEndian: bytes[(start + 8)..<(start + 12)].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
                if length == 0xFFFF_FFFF || start + 12 + Int(length) == bytes.endIndex { return start - bytes.startIndex }
            } else {
                let length = UInt32(littleEndian: bytes[(start + 4)..<(start + 8)].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
                if length == 0xFFFF_FFFF || start + 8 + Int(length) == bytes.endIndex { return start - bytes.startIndex }
            }
        }
        return nil
    }
}

/// A small structured-report file whose ContentSequence (0040,A730) nests `depth` levels deep:
/// the shape of the attack file (7,000 levels in 300 KB), written byte by byte.
enum NestedSequences {
    enum Encoding: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case explicitLittle = "1.2.840.10008.1.2.1"
        case implicitLittle = "1.2.840.10008.1.2"
        case explicitBig = "1.2.840.10008.1.2.2"

        var testDescription: String {
            switch self {
            case .explicitLittle: "explicit VR little endian"
            case .implicitLittle: "implicit VR little endian"
            case .explicitBig: "explicit VR big endian"
            }
        }
    }

    /// Basic Text SR: not an image, so a file without pixel data is complete.
    static let sopClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    static let instanceUID = "1.2.826.0.1.3680043.2.1143.25.28.1"
    static let undefined: UInt32 = 0xFFFF_FFFF

    static func file(depth: Int, encoding: Encoding, definedLengths: Bool) -> Data {
        var meta = Data()
        meta += element(0x0002, 0x0001, "OB", Data([0, 1]), .explicitLittle)
        meta += element(0x0002, 0x0002, "UI", uid(sopClassUID), .explicitLittle)
        meta += element(0x0002, 0x0003, "UI", uid(instanceUID), .explicitLittle)
        meta += element(0x0002, 0x0010, "UI", uid(encoding.rawValue), .explicitLittle)
        var file = Data(count: 128) + Data("DICM".utf8)
        file += element(0x0002, 0x0000, "UL", u32(UInt32(meta.count), .explicitLittle), .explicitLittle) + meta
        file += element(0x0008, 0x0016, "UI", uid(sopClassUID), encoding)
        file += element(0x0008, 0x0018, "UI", uid(instanceUID), encoding)
        file += element(0x0020, 0x000D, "UI", uid(instanceUID + ".1"), encoding)
        file += element(0x0020, 0x000E, "UI", uid(instanceUID + ".2"), encoding)
        file += definedLengths ? definedNesting(depth, encoding) : undefinedNesting(depth, encoding)
        return file
    }

    /// Sequence, item, sequence, item, … each of undefined length, then all their delimiters.
    static func undefinedNesting(_ depth: Int, _ encoding: Encoding) -> Data {
        var data = Data()
        for _ in 0..<depth {
            data += sequenceHeader(length: undefined, encoding) + tag(0xFFFE, 0xE000, encoding) + u32(undefined, encoding)
        }
        data += element(0x0040, 0xA040, "CS", Data("TEXT".utf8), encoding)
        for _ in 0..<depth {
            data += tag(0xFFFE, 0xE00D, encoding) + u32(0, encoding) + tag(0xFFFE, 0xE0DD, encoding) + u32(0, encoding)
        }
        return data
    }

    /// The same nesting with every length given, built from the innermost level out.
    static func definedNesting(_ depth: Int, _ encoding: Encoding) -> Data {
        var inner = element(0x0040, 0xA040, "CS", Data("TEXT".utf8), encoding)
        for _ in 0..<depth {
            let item = tag(0xFFFE, 0xE000, encoding) + u32(UInt32(inner.count), encoding) + inner
            inner = sequenceHeader(length: UInt32(item.count), encoding) + item
        }
        return inner
    }

    static func sequenceHeader(length: UInt32, _ encoding: Encoding) -> Data {
        let head = tag(0x0040, 0xA730, encoding)
        if encoding == .implicitLittle { return head + u32(length, encoding) }
        return head + Data("SQ".utf8) + Data([0, 0]) + u32(length, encoding)
    }

    static func element(_ group: UInt16, _ element: UInt16, _ vr: String, _ value: Data, _ encoding: Encoding) -> Data {
        let head = tag(group, element, encoding)
        if encoding == .implicitLittle { return head + u32(UInt32(value.count), encoding) + value }
        if vr == "OB" || vr == "SQ" || vr == "UN" {
            return head + Data(vr.utf8) + Data([0, 0]) + u32(UInt32(value.count), encoding) + value
        }
        return head + Data(vr.utf8) + u16(UInt16(value.count), encoding) + value
    }

    static func uid(_ text: String) -> Data {
        var data = Data(text.utf8)
        if data.count % 2 == 1 { data.append(0) }
        return data
    }

    static func tag(_ group: UInt16, _ element: UInt16, _ encoding: Encoding) -> Data {
        u16(group, encoding) + u16(element, encoding)
    }

    static func u16(_ value: UInt16, _ encoding: Encoding) -> Data {
        withUnsafeBytes(of: encoding == .explicitBig ? value.bigEndian : value.littleEndian) { Data($0) }
    }

    static func u32(_ value: UInt32, _ encoding: Encoding) -> Data {
        withUnsafeBytes(of: encoding == .explicitBig ? value.bigEndian : value.littleEndian) { Data($0) }
    }
}
