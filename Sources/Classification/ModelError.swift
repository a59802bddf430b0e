/// Why a model file cannot be used. Raised at load, never at prediction: a model that loads
/// answers correctly or not at all.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file is missing, unreadable or not a well-formed safetensors file.
    case unreadable(path: String, reason: String)
    /// The file is a safetensors file but not a model of this kind or version.
    case wrongFormat(path: String, expected: String, found: String)
    /// The model's arrays are inconsistent (sizes, indices out of range).
    case inconsistent(path: String, reason: String)
    /// The model was trained on other feature columns than this build encodes.
    case featureMismatch(path: String, reason: String)
    /// The model's classes are not mrsort's taxonomy.
    case classMismatch(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "\(path): cannot load model: \(reason)"
        case .wrongFormat(let path, let expected, let found): "\(path): expected a \(expected) model, found \(found)"
        case .inconsistent(let path, let reason): "\(path): inconsistent model: \(reason)"
        case .featureMismatch(let path, let reason): "\(path): feature mismatch: \(reason)"
        case .classMismatch(let path, let reason): "\(path): class mismatch: \(reason)"
        }
    }
}

extension SafeTensors {
    /// Loads a model file, mapping read failures to `ModelError.unreadable`.
    static func model(at path: String) throws(ModelError) -> SafeTensors {
        do {
            return try SafeTensors(contentsOf: path)
        } catch {
            throw .unreadable(path: path, reason: error.description)
        }
    }

    /// Refuses a file whose `format`/`version` metadata is not the expected model's.
    func requireFormat(_ format: String, version: String, path: String) throws(ModelError) {
        let found = (metadata["format"] ?? "none", metadata["version"] ?? "none")
        guard found == (format, version) else {
            throw .wrongFormat(path: path, expected: "\(format) v\(version)", found: "\(found.0) v\(found.1)")
        }
    }

    func modelTensor(_ name: String, path: String) throws(ModelError) -> Tensor {
        guard let tensor = tensors[name] else { throw .inconsistent(path: path, reason: "no tensor \"\(name)\"") }
        return tensor
    }

    func modelMetadata(_ key: String, path: String) throws(ModelError) -> String {
        guard let value = metadata[key] else { throw .inconsistent(path: path, reason: "no metadata \"\(key)\"") }
        return value
    }
}
