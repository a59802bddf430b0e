/// Why a DICOM file could not be read, decoded or written. Every case names the file.
public enum DICOMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The path does not exist, is not a regular file, or cannot be read.
    case unreadable(path: String, reason: String)
    /// The path is a directory.
    case isDirectory(path: String)
    /// The bytes are not DICOM.
    case notDICOM(path: String, reason: String)
    /// The file ends before the data it announces.
    case truncated(path: String, reason: String)
    /// The file is DICOM but its structure is broken.
    case malformed(path: String, reason: String)
    /// An attribute that mrsort needs is absent or empty.
    case missingAttribute(path: String, attribute: String, tag: Tag)
    /// The transfer syntax is unknown, or its pixel data cannot be decoded by this build.
    case unsupportedTransferSyntax(path: String, reason: String)
    /// The pixel data is absent or inconsistent with Rows, Columns and bit depth.
    case badPixelData(path: String, reason: String)
    /// A frame index beyond NumberOfFrames.
    case frameOutOfRange(path: String, frame: Int, frames: Int)
    /// Writing, syncing or renaming failed; the original is untouched.
    case writeFailed(path: String, reason: String)

    /// The file the error is about.
    public var path: String {
        switch self {
        case .unreadable(let path, _), .isDirectory(let path), .notDICOM(let path, _),
             .truncated(let path, _), .malformed(let path, _), .missingAttribute(let path, _, _),
             .unsupportedTransferSyntax(let path, _), .badPixelData(let path, _),
             .frameOutOfRange(let path, _, _), .writeFailed(let path, _):
            return path
        }
    }

    /// The reason alone, without the path.
    public var reason: String {
        switch self {
        case .unreadable(_, let reason): return "cannot read: \(reason)"
        case .isDirectory: return "is a directory, not a DICOM file"
        case .notDICOM(_, let reason): return "not a DICOM file: \(reason)"
        case .truncated(_, let reason): return "truncated: \(reason)"
        case .malformed(_, let reason): return "malformed DICOM: \(reason)"
        case .missingAttribute(_, let attribute, let tag): return "missing \(attribute) \(tag)"
        case .unsupportedTransferSyntax(_, let reason): return "unsupported transfer syntax: \(reason)"
        case .badPixelData(_, let reason): return "bad pixel data: \(reason)"
        case .frameOutOfRange(_, let frame, let frames): return "frame \(frame) out of range (the file has \(frames))"
        case .writeFailed(_, let reason): return "write failed: \(reason)"
        }
    }

    public var description: String { "\(path): \(reason)" }
}
