import CYAML

/// A position in a YAML file, 1-based, for error messages.
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// A parsed YAML node that remembers where it came from, so that configuration errors can point
/// at the line and column.
///
/// libyaml's document loader does the parsing; anchors and aliases are resolved by it.
public indirect enum YAMLNode: Sendable {
    case scalar(String, plain: Bool, at: SourceLocation)
    case sequence([YAMLNode], at: SourceLocation)
    case mapping([(key: YAMLNode, value: YAMLNode)], at: SourceLocation)

    public var location: SourceLocation {
        switch self {
        case .scalar(_, _, let at), .sequence(_, let at), .mapping(_, let at): at
        }
    }

    /// What the node is, in words, for "expected X, found Y" messages.
    public var kind: String {
        switch self {
        case .scalar: "a scalar"
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }

    /// Parses the first document of `text`; an empty document is an empty mapping.
    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) != 0 else {
            throw YAMLError(message: "cannot initialise the YAML parser", at: SourceLocation(line: 1, column: 1))
        }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        var document = yaml_document_t()
        let loaded = bytes.withUnsafeBufferPointer { buffer -> Bool in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            return yaml_parser_load(&parser, &document) != 0
        }
        guard loaded else {
            let mark = parser.problem_mark
            let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
            let context = parser.context.map { String(cString: $0) + ": " } ?? ""
            throw YAMLError(message: context + problem, at: SourceLocation(line: mark.line + 1, column: mark.column + 1))
        }
        defer { yaml_document_delete(&document) }
        guard let root = yaml_document_get_root_node(&document) else {
            return .mapping([], at: SourceLocation(line: 1, column: 1))
        }
        return convert(root, in: &document, depth: 0)
    }

    private static func convert(_ node: UnsafeMutablePointer<yaml_node_t>, in document: inout yaml_document_t, depth: Int) -> YAMLNode {
        let mark = node.pointee.start_mark
        let at = SourceLocation(line: mark.line + 1, column: mark.column + 1)
        // Aliases can make cycles in principle; a configuration is never this deep.
        guard depth < 64 else { return .scalar("", plain: true, at: at) }
        switch node.pointee.type {
        case YAML_SCALAR_NODE:
            let scalar = node.pointee.data.scalar
            let buffer = UnsafeBufferPointer(start: scalar.value, count: scalar.length)
            return .scalar(String(decoding: buffer, as: UTF8.self), plain: scalar.style == YAML_PLAIN_SCALAR_STYLE, at: at)
        case YAML_SEQUENCE_NODE:
            var items: [YAMLNode] = []
            var item = node.pointee.data.sequence.items.start
            while let current = item, current != node.pointee.data.sequence.items.top {
                if let child = yaml_document_get_node(&document, current.pointee) {
                    items.append(convert(child, in: &document, depth: depth + 1))
                }
                item = current + 1
            }
            return .sequence(items, at: at)
        case YAML_MAPPING_NODE:
            var pairs: [(key: YAMLNode, value: YAMLNode)] = []
            var pair = node.pointee.data.mapping.pairs.start
            while let current = pair, current != node.pointee.data.mapping.pairs.top {
                if let key = yaml_document_get_node(&document, current.pointee.key),
                   let value = yaml_document_get_node(&document, current.pointee.value) {
                    pairs.append((convert(key, in: &document, depth: depth + 1), convert(value, in: &document, depth: depth + 1)))
                }
                pair = current + 1
            }
            return .mapping(pairs, at: at)
        default:
            return .scalar("", plain: true, at: at)
        }
    }
}

/// A YAML syntax error.
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var at: SourceLocation

    public var description: String { "\(at): \(message)" }
}
