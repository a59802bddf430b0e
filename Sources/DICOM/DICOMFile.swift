import CDCMTK

/// A DICOM file held open through DCMTK: its meta header, its dataset and, when opened
/// with pixels, its frames on demand.
///
/// Not thread-safe: use one instance per thread. Distinct instances may be used concurrently.
public final class DICOMFile {
    /// The path the file was opened from.
    public let path: String
    /// Whether parsing stopped before PixelData.
    public let isHeaderOnly: Bool

    let handle: OpaquePointer

    private init(path: String, headerOnly: Bool, handle: OpaquePointer) {
        self.path = path
        self.isHeaderOnly = headerOnly
        self.handle = handle
    }

    deinit { mrs_close(handle) }

    /// The default ceiling on the decoded size of one frame: 256 MiB, far above any MR frame
    /// (a 1024 × 1024 RGB frame is 3 MiB) and far below what a crafted Rows × Columns can claim.
    public static let maximumDecodedFrameBytes = 256 << 20

    /// Opens and parses a file.
    ///
    /// The file's structure is checked before DCMTK parses it (sequences nested more than 64 deep
    /// are refused as `.malformed`: DCMTK's recursive parser would crash on them), and NumberOfFrames
    /// is checked against what the file can hold (`.badPixelData`). A full read also checks that the
    /// file is complete: one that describes an image but ends before or inside its pixel data throws
    /// `.truncated`, and one whose frames would decode to more than `maximumDecodedFrameBytes` each
    /// throws `.badPixelData`.
    /// - Parameters:
    ///   - headerOnly: stop before PixelData (fast; frames cannot be read).
    ///   - maximumDecodedFrameBytes: the most bytes one decoded frame may take, checked before anything
    ///     is allocated or decoded (at most 0xFFFFFFF0: DCMTK sizes frames in 32 bits).
    public static func open(_ path: String, headerOnly: Bool = true,
                            maximumDecodedFrameBytes: Int = DICOMFile.maximumDecodedFrameBytes) throws(DICOMError) -> DICOMFile {
        var handle: OpaquePointer?
        let ceiling = UInt64(max(0, maximumDecodedFrameBytes))
        let (status, message) = withMessageBuffer { buffer, size in
            mrs_open(path, headerOnly ? 1 : 0, ceiling, &handle, buffer, size)
        }
        guard status == MRS_OK, let handle else {
            throw DICOMError(status: status, path: path, message: message)
        }
        return DICOMFile(path: path, headerOnly: headerOnly, handle: handle)
    }

    /// The main dataset.
    public var dataset: DICOMItem { DICOMItem(pointer: mrs_dataset(handle), file: self) }

    /// The file meta information (group 0002); empty for files without a meta header.
    public var metaInformation: DICOMItem { DICOMItem(pointer: mrs_meta(handle), file: self) }

    /// NumberOfFrames as checked at open against what the file holds (1 when absent or not a
    /// positive integer): never more than the file's pixel data (or, header-only, its size) can carry.
    public var numberOfFrames: Int { Int(clamping: mrs_frame_count(handle)) }

    /// The UID of the transfer syntax the dataset is encoded in.
    public var transferSyntaxUID: String {
        var buffer = [CChar](repeating: 0, count: 80)
        _ = mrs_transfer_syntax(handle, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// One item of a file: its dataset, its meta header or an item of a sequence.
/// Keeps its file alive.
public struct DICOMItem {
    let pointer: OpaquePointer?
    let file: DICOMFile

    /// Whether the element is present (possibly empty).
    public func contains(_ tag: Tag) -> Bool {
        mrs_item_contains(pointer, tag.group, tag.element) != 0
    }

    /// The whole value of a string element, trailing padding removed; nil when absent.
    /// Empty values are returned as "" (present but empty).
    public func string(_ tag: Tag) -> String? {
        withBytes(tag) { decodeText($0) }
    }

    /// The values of a multi-valued string element, each trimmed; nil when absent or empty.
    public func strings(_ tag: Tag) -> [String]? {
        withBytes(tag) { bytes -> [String]? in
            guard !withoutPadding(bytes[...]).isEmpty else { return nil }
            return bytes.split(separator: backslash, omittingEmptySubsequences: false).map { value in
                decodeText(UnsafeRawBufferPointer(rebasing: withoutPadding(value)))
            }
        } ?? nil
    }

    /// The value of a single-valued string element, trimmed; nil when absent or empty.
    public func text(_ tag: Tag) -> String? {
        withBytes(tag) { bytes -> String? in
            let value = withoutPadding(bytes[...])
            return value.isEmpty ? nil : decodeText(UnsafeRawBufferPointer(rebasing: value))
        } ?? nil
    }

    /// Calls `body` with the raw bytes of a string element; nil when absent.
    private func withBytes<Result>(_ tag: Tag, _ body: (UnsafeRawBufferPointer) -> Result) -> Result? {
        let small = 256
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: small) { buffer -> Result? in
            let length = mrs_item_string(pointer, tag.group, tag.element, buffer.baseAddress, small)
            if length < 0 { return nil }
            if length < small { return body(UnsafeRawBufferPointer(start: buffer.baseAddress, count: length)) }
            var large = [CChar](repeating: 0, count: length + 1)
            _ = mrs_item_string(pointer, tag.group, tag.element, &large, large.count)
            return large.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0.prefix(length))) }
        }
    }

    /// Value `index` of a numeric element (DS, IS, FL, FD, US, SS, UL, SL; UN read as `encoding`).
    public func number(_ tag: Tag, index: Int = 0, encoding: BinaryEncoding = .text) -> Double? {
        var value = 0.0
        guard mrs_item_number(pointer, tag.group, tag.element, UInt(index), encoding.hint, &value) != 0,
              value.isFinite else { return nil }
        return value
    }

    /// All values of a numeric element; nil when absent, empty or when any value fails to parse.
    public func numbers(_ tag: Tag, encoding: BinaryEncoding = .text) -> [Double]? {
        let count = Int(mrs_item_multiplicity(pointer, tag.group, tag.element, encoding.hint))
        guard count > 0 else { return nil }
        var values: [Double] = []
        values.reserveCapacity(count)
        for index in 0..<count {
            guard let value = number(tag, index: index, encoding: encoding) else { return nil }
            values.append(value)
        }
        return values
    }

    /// An integer value; nil when absent or not integral.
    public func integer(_ tag: Tag, index: Int = 0, encoding: BinaryEncoding = .text) -> Int? {
        guard let value = number(tag, index: index, encoding: encoding),
              value.rounded() == value, abs(value) < 9.0e15 else { return nil }
        return Int(value)
    }

    /// The items of a sequence element; nil when absent or not a sequence.
    public func items(_ tag: Tag) -> [DICOMItem]? {
        let count = mrs_item_sequence_count(pointer, tag.group, tag.element)
        guard count >= 0 else { return nil }
        return (0..<count).compactMap { index in
            mrs_item_sequence_item(pointer, tag.group, tag.element, UInt(index)).map { DICOMItem(pointer: $0, file: file) }
        }
    }

    /// The first item of a sequence element, where most functional-group macros keep their values.
    public func firstItem(_ tag: Tag) -> DICOMItem? {
        mrs_item_sequence_item(pointer, tag.group, tag.element, 0).map { DICOMItem(pointer: $0, file: file) }
    }

    /// The tag of a private element, found through its private creator.
    ///
    /// Private element (gggg,xxEE) belongs to the block xx whose creator (gggg,00xx) holds `creator`;
    /// vendors usually use block 10, but the block is not fixed, so it is looked up.
    public func privateTag(group: UInt16, creator: String, offset: UInt8) -> Tag? {
        let block = mrs_item_private_block(pointer, group, creator)
        guard block >= 0 else { return nil }
        return Tag(group, UInt16(block) << 8 | UInt16(offset))
    }
}

/// How to read the bytes of an element whose VR is UN (private tags in implicit-VR files).
public enum BinaryEncoding: Sendable {
    /// Backslash-separated decimal text (IS, DS).
    case text
    /// Little-endian float32 values (FL).
    case float32
    /// Little-endian float64 values (FD).
    case float64
    /// Little-endian signed 16-bit values (SS).
    case int16

    var hint: mrs_binary_hint {
        switch self {
        case .text: MRS_HINT_TEXT
        case .float32: MRS_HINT_FLOAT32
        case .float64: MRS_HINT_FLOAT64
        case .int16: MRS_HINT_INT16
        }
    }
}

private let backslash = UInt8(ascii: "\\")

/// `bytes` without DICOM padding (spaces and NULs) at either end.
func withoutPadding(_ bytes: Slice<UnsafeRawBufferPointer>) -> Slice<UnsafeRawBufferPointer> {
    let isPadding: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0 }
    guard let first = bytes.firstIndex(where: { !isPadding($0) }),
          let last = bytes.lastIndex(where: { !isPadding($0) }) else { return bytes[bytes.startIndex..<bytes.startIndex] }
    return bytes[first...last]
}

/// Decodes element text: UTF-8 where valid (ASCII, ISO_IR 192), otherwise ISO 8859-1,
/// the most common single-byte set in scanner exports.
func decodeText(_ bytes: UnsafeRawBufferPointer) -> String {
    if let utf8 = String(validating: bytes, as: UTF8.self) { return utf8 }
    return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
}

/// Calls a shim function with a message buffer and returns its result and message.
func withMessageBuffer<Result>(_ body: (UnsafeMutablePointer<CChar>, Int) -> Result) -> (Result, String) {
    let size = 512
    return withUnsafeTemporaryAllocation(of: CChar.self, capacity: size) { buffer in
        buffer[0] = 0
        let result = body(buffer.baseAddress!, size)
        let length = buffer.firstIndex(of: 0) ?? size
        let message = String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress, count: length), as: UTF8.self)
        return (result, message)
    }
}

extension DICOMError {
    /// Maps a shim status to the error that names the file and the reason.
    init(status: mrs_status, path: String, message: String) {
        switch status {
        case MRS_IS_DIRECTORY: self = .isDirectory(path: path)
        case MRS_NOT_DICOM: self = .notDICOM(path: path, reason: message)
        case MRS_TRUNCATED: self = .truncated(path: path, reason: message)
        case MRS_UNSUPPORTED_TRANSFER_SYNTAX: self = .unsupportedTransferSyntax(path: path, reason: message)
        case MRS_BAD_PIXEL_DATA: self = .badPixelData(path: path, reason: message)
        case MRS_WRITE_FAILED: self = .writeFailed(path: path, reason: message)
        case MRS_UNREADABLE: self = .unreadable(path: path, reason: message)
        default: self = .malformed(path: path, reason: message)
        }
    }
}
