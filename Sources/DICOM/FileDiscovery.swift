#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds candidate DICOM files under paths, the way a drop folder is read: recursively,
/// in name order, skipping names that are still being written or are not meant to be read
/// (hidden names, which include mrsort's own temporary files, and `*.part`, `*.partial`, `*.tmp`).
public enum DICOMFileDiscovery {
    /// Suffixes of files that are still being transferred.
    public static let partialSuffixes = [".part", ".partial", ".tmp"]

    /// Whether a file name is one to leave alone until it is renamed.
    public static func isIgnored(name: String) -> Bool {
        name.hasPrefix(".") || partialSuffixes.contains { name.hasSuffix($0) }
    }

    /// The files under `paths`: files given directly are returned as they are (ignored names
    /// included, since they were asked for), directories are walked recursively.
    /// - Throws: `DICOMError.unreadable` for a path that does not exist or a directory that cannot be listed.
    public static func files(in paths: [String]) throws(DICOMError) -> [String] {
        var result: [String] = []
        for path in paths {
            var info = stat()
            guard stat(path, &info) == 0 else {
                throw DICOMError.unreadable(path: path, reason: String(cString: strerror(errno)))
            }
            if info.st_mode & S_IFMT == S_IFDIR {
                try walk(path, into: &result)
            } else {
                result.append(path)
            }
        }
        return result
    }

    private static func walk(_ directory: String, into result: inout [String]) throws(DICOMError) {
        guard let stream = opendir(directory) else {
            throw DICOMError.unreadable(path: directory, reason: String(cString: strerror(errno)))
        }
        var entries: [(name: String, isDirectory: Bool)] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." || isIgnored(name: name) { continue }
            let full = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            var isDirectory = entry.pointee.d_type == UInt8(DT_DIR)
            if entry.pointee.d_type == UInt8(DT_UNKNOWN) || entry.pointee.d_type == UInt8(DT_LNK) {
                var info = stat()
                guard stat(full, &info) == 0 else { continue }
                isDirectory = info.st_mode & S_IFMT == S_IFDIR
            }
            entries.append((name, isDirectory))
        }
        closedir(stream)
        for entry in entries.sorted(by: { $0.name < $1.name }) {
            let full = directory.hasSuffix("/") ? directory + entry.name : directory + "/" + entry.name
            if entry.isDirectory {
                try walk(full, into: &result)
            } else {
                result.append(full)
            }
        }
    }
}
