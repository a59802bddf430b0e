import Foundation

/// The labels of a corpus (`labels.csv` of `../shared/realdata` or of the synthetic generator):
/// one row per series folder with at least `dir`, `series_uid`, `sequence`, `orientation`, `vendor`.
public struct SeriesLabels: Sendable {
    public struct Row: Sendable, Hashable {
        /// The series folder, relative to the corpus root.
        public var dir: String
        public var seriesUID: String
        public var sequence: SequenceClass
        /// nil where the orientation is not labelled.
        public var orientation: Orientation?
        public var vendor: String
        /// Every column of the row, by header name (e.g. `subject`, `pixels`).
        public var columns: [String: String]
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case missingColumn(path: String, column: String)
        case badRow(path: String, line: Int, reason: String)

        public var description: String {
            switch self {
            case .unreadable(let path, let reason): "\(path): cannot read labels: \(reason)"
            case .missingColumn(let path, let column): "\(path): no \"\(column)\" column"
            case .badRow(let path, let line, let reason): "\(path):\(line): \(reason)"
            }
        }
    }

    public let rows: [Row]

    /// Rows by series folder.
    public var byDirectory: [String: Row] { Dictionary(rows.map { ($0.dir, $0) }, uniquingKeysWith: { first, _ in first }) }

    public init(rows: [Row]) { self.rows = rows }

    public init(contentsOf path: String) throws(Failure) {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw .unreadable(path: path, reason: error.localizedDescription)
        }
        let lines = text.split(whereSeparator: \.isNewline).map(String.init)
        guard let headerLine = lines.first else { throw .unreadable(path: path, reason: "empty file") }
        let header = CSVLine.fields(headerLine)
        func column(_ name: String) throws(Failure) -> Int {
            guard let index = header.firstIndex(of: name) else { throw .missingColumn(path: path, column: name) }
            return index
        }
        let dir = try column("dir"), uid = try column("series_uid"), sequence = try column("sequence")
        let orientation = try column("orientation"), vendor = try column("vendor")
        var rows: [Row] = []
        for (offset, line) in lines.dropFirst().enumerated() {
            let fields = CSVLine.fields(line)
            guard fields.count == header.count else {
                throw .badRow(path: path, line: offset + 2, reason: "\(fields.count) fields, the header has \(header.count)")
            }
            guard let sequenceClass = SequenceClass(rawValue: fields[sequence]) else {
                throw .badRow(path: path, line: offset + 2, reason: "unknown sequence class \"\(fields[sequence])\"")
            }
            let orientationValue = fields[orientation]
            guard orientationValue.isEmpty || Orientation(rawValue: orientationValue) != nil else {
                throw .badRow(path: path, line: offset + 2, reason: "unknown orientation \"\(orientationValue)\"")
            }
            rows.append(Row(dir: fields[dir], seriesUID: fields[uid], sequence: sequenceClass,
                            orientation: Orientation(rawValue: orientationValue), vendor: fields[vendor],
                            columns: Dictionary(zip(header, fields).map { ($0, $1) }, uniquingKeysWith: { a, _ in a })))
        }
        self.rows = rows
    }
}

extension SeriesLabels.Row {
    /// A QA phantom or test object (`subject` column `phantom`). `../shared/realdata` labels these
    /// `other` but reports them apart from its accuracy figures: a phantom scanned with a DWI
    /// protocol carries DWI metadata, and which answer is right depends on the site.
    public var isPhantom: Bool { columns["subject"] == "phantom" }

    /// False where the source replaced the pixel data by noise or zeros (`pixels` column
    /// `synthetic…`): such series are left out of pixel-based (CNN) figures.
    public var hasRealPixels: Bool { !(columns["pixels"] ?? "").hasPrefix("synthetic") }
}

/// RFC 4180 fields of one CSV line (double quotes, doubled quotes inside them).
enum CSVLine {
    static func fields(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var characters = Array(line)[...]
        while let c = characters.popFirst() {
            if quoted {
                if c == "\"" {
                    if characters.first == "\"" { current.append("\""); characters = characters.dropFirst() } else { quoted = false }
                } else {
                    current.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                fields.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        fields.append(current)
        return fields
    }
}
