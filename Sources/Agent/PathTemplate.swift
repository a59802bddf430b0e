import Classification
import DICOM
import Foundation

/// A template over DICOM attributes and classification results, e.g.
/// `{PatientID}/{StudyDate}_{AccessionNumber}_{StudyKey}/{SeriesNumber}_{sequence}_{orientation}/{SOPInstanceUID}.dcm`.
///
/// Used for the layout of sorted files and for the rewritten SeriesDescription. Values from tags are
/// sanitised before they become path components: no `/`, no `..`, no control characters, so that
/// a hostile or broken header cannot write outside the output folder.
public struct PathTemplate: Sendable, Equatable, CustomStringConvertible {
    /// The placeholders a template may use.
    public enum Field: String, CaseIterable, Sendable {
        case patientID = "PatientID"
        case studyDate = "StudyDate"
        case accessionNumber = "AccessionNumber"
        case modality = "Modality"
        case studyInstanceUID = "StudyInstanceUID"
        case seriesInstanceUID = "SeriesInstanceUID"
        case sopInstanceUID = "SOPInstanceUID"
        case seriesNumber = "SeriesNumber"
        case instanceNumber = "InstanceNumber"
        case seriesDescription = "SeriesDescription"
        case protocolName = "ProtocolName"
        case manufacturer = "Manufacturer"
        case bodyPartExamined = "BodyPartExamined"
        case acquisitionTime = "AcquisitionTime"
        /// A short, stable name for the study: 10 hex digits of a 64-bit FNV-1a hash of its
        /// StudyInstanceUID. De-identified exports give everyone one PatientID and shift dates,
        /// and many studies have no AccessionNumber: only the UID tells two studies apart.
        case studyKey = "StudyKey"
        /// The same for the series (two series may share a SeriesNumber).
        case seriesKey = "SeriesKey"
        case sequence
        case orientation
        case confidence
    }

    enum Segment: Sendable, Equatable {
        case literal(String)
        case field(Field)
    }

    /// The template as written.
    public let source: String
    let segments: [Segment]

    /// Parses `source`; unknown placeholders and unbalanced braces are errors.
    public init(_ source: String) throws(TemplateError) {
        self.source = source
        var segments: [Segment] = []
        var literal = ""
        var rest = Substring(source)
        while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            literal += rest[..<open]
            guard rest[open] == "{", let close = rest[open...].firstIndex(of: "}") else {
                throw TemplateError(template: source, reason: "unbalanced braces")
            }
            let name = String(rest[rest.index(after: open)..<close])
            guard let field = Field(rawValue: name) else {
                throw TemplateError(
                    template: source,
                    reason: "unknown placeholder {\(name)}; known: " + Field.allCases.map { "{\($0.rawValue)}" }.joined(separator: ", ")
                )
            }
            if !literal.isEmpty { segments.append(.literal(literal)) }
            literal = ""
            segments.append(.field(field))
            rest = rest[rest.index(after: close)...]
        }
        literal += rest
        if !literal.isEmpty { segments.append(.literal(literal)) }
        self.segments = segments
    }

    public var description: String { source }

    /// The layout used when a rule names none: one folder per study (its key beside the
    /// patient's date and accession number) and per series.
    public static let defaultLayout = "{PatientID}/{StudyDate}_{AccessionNumber}_{StudyKey}/{SeriesNumber}_{sequence}_{orientation}/{SOPInstanceUID}.dcm"

    /// The first `count` components of the relative path, where `count` reaches the component
    /// holding the first of `fields` (the study's folder for `[.studyKey, .studyInstanceUID]`);
    /// nil when no component before the file name holds one.
    public func folder(through fields: Set<Field>, _ values: TemplateValues) -> String? {
        var component = 0
        var found: Int?
        for segment in segments {
            switch segment {
            case .field(let field) where fields.contains(field): found = found ?? component
            case .literal(let literal): component += literal.filter { $0 == "/" }.count
            default: break
            }
        }
        let components = relativePath(values).split(separator: "/")
        guard let found, found < components.count - 1 else { return nil }
        return components[...found].joined(separator: "/")
    }

    /// Whether the template uses any of `fields`.
    public func uses(_ fields: Set<Field>) -> Bool {
        segments.contains { if case .field(let field) = $0 { fields.contains(field) } else { false } }
    }

    /// 10 hex digits of FNV-1a (64 bit) of `text`: stable across runs and machines, unlike
    /// Swift's seeded `hashValue`.
    static func key(_ text: String) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return String((String(repeating: "0", count: max(0, 16 - hex.count)) + hex).prefix(10))
    }

    /// The template filled in as free text (SeriesDescription): control characters removed,
    /// cut to `limit` characters (64 for the LO value representation).
    public func text(_ values: TemplateValues, limit: Int = 64) -> String {
        let text = segments.map { segment in
            switch segment {
            case .literal(let literal): literal
            case .field(let field): values[field]
            }
        }.joined()
        return String(String(text.unicodeScalars.filter { !CharacterSet.controlCharacters.contains($0) && $0 != "\\" }).prefix(limit))
            .trimmingCharacters(in: .whitespaces)
    }

    /// The template filled in as a relative path: every value is sanitised, every component is a
    /// safe file name, and the result never leaves the folder it is appended to.
    public func relativePath(_ values: TemplateValues) -> String {
        var components: [String] = []
        var current = ""
        for segment in segments {
            switch segment {
            case .field(let field):
                current += Self.sanitise(values[field])
            case .literal(let literal):
                let parts = literal.split(separator: "/", omittingEmptySubsequences: false)
                for (index, part) in parts.enumerated() {
                    current += part
                    if index < parts.count - 1 {
                        components.append(current)
                        current = ""
                    }
                }
            }
        }
        components.append(current)
        return components.filter { !$0.isEmpty }.map(Self.safeComponent).joined(separator: "/")
    }

    /// A value with nothing that could change the path's shape.
    static func sanitise(_ value: String) -> String {
        String(String.UnicodeScalarView(value.unicodeScalars.map { scalar in
            if scalar == "/" || scalar == "\\" || scalar == "\0" || CharacterSet.controlCharacters.contains(scalar) { return "_" }
            return scalar
        })).trimmingCharacters(in: .whitespaces)
    }

    /// A component that is a plain name: not `.`/`..`, not hidden, not longer than a file name may be.
    static func safeComponent(_ component: String) -> String {
        var name = component.trimmingCharacters(in: .whitespaces)
        if name.isEmpty { name = "unknown" }
        if name.hasPrefix(".") { name = "_" + name.dropFirst() }
        while name.utf8.count > 255 { name.removeLast() }
        return name
    }
}

/// The values a template is filled with: one image's header and its series' classification.
public struct TemplateValues: Sendable {
    public var header: ImageHeader
    public var sequence: SequenceClass
    public var orientation: Orientation
    public var confidence: Double

    public init(header: ImageHeader, sequence: SequenceClass, orientation: Orientation, confidence: Double) {
        self.header = header
        self.sequence = sequence
        self.orientation = orientation
        self.confidence = confidence
    }

    /// The value of a placeholder; "unknown" when the attribute is absent.
    public subscript(field: PathTemplate.Field) -> String {
        let value: String? = switch field {
        case .patientID: header.patientID
        case .studyDate: header.studyDate
        case .accessionNumber: header.accessionNumber
        case .modality: header.modality
        case .studyInstanceUID: header.studyInstanceUID
        case .seriesInstanceUID: header.seriesInstanceUID
        case .sopInstanceUID: header.sopInstanceUID
        case .seriesNumber: header.seriesNumber.map(String.init)
        case .instanceNumber: header.instanceNumber.map(String.init)
        case .seriesDescription: header.seriesDescription
        case .protocolName: header.protocolName
        case .manufacturer: header.manufacturer
        case .bodyPartExamined: header.bodyPartExamined
        case .acquisitionTime: header.acquisitionTime
        case .studyKey: PathTemplate.key(header.studyInstanceUID)
        case .seriesKey: PathTemplate.key(header.seriesInstanceUID)
        case .sequence: sequence.rawValue
        case .orientation: orientation.rawValue
        case .confidence: String(format: "%.2f", confidence)
        }
        guard let value, !value.trimmingCharacters(in: .whitespaces).isEmpty else { return "unknown" }
        return value
    }
}

/// A template that cannot be used.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var template: String
    public var reason: String

    public var description: String { "template \"\(template)\": \(reason)" }
}
