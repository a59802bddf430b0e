import Foundation

/// Reads and writes the safetensors format (https://github.com/huggingface/safetensors):
/// an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and
/// byte range, optional string metadata under `__metadata__`, then the raw little-endian data.
///
/// It is the exchange format between the Swift feature extraction, the Python training and
/// the Swift inference, so one implementation serves all three directions.
public struct SafeTensors: Sendable {
    /// Element types mrsort uses.
    public enum DType: String, Sendable {
        case float32 = "F32", float64 = "F64", int32 = "I32", int64 = "I64", uint8 = "U8"

        var size: Int {
            switch self {
            case .float32, .int32: 4
            case .float64, .int64: 8
            case .uint8: 1
            }
        }
    }

    /// One tensor: its type, shape and raw little-endian bytes.
    public struct Tensor: Sendable {
        public var dtype: DType
        public var shape: [Int]
        public var data: Data

        public var count: Int { shape.reduce(1, *) }

        public init(dtype: DType, shape: [Int], data: Data) {
            self.dtype = dtype
            self.shape = shape
            self.data = data
        }

        public init(_ values: [Float], shape: [Int]) {
            self.init(dtype: .float32, shape: shape, data: values.withUnsafeBytes { Data($0) })
        }

        public init(_ values: [Int64], shape: [Int]) {
            self.init(dtype: .int64, shape: shape, data: values.withUnsafeBytes { Data($0) })
        }

        public init(_ values: [Int32], shape: [Int]) {
            self.init(dtype: .int32, shape: shape, data: values.withUnsafeBytes { Data($0) })
        }

        public init(_ values: [UInt8], shape: [Int]) {
            self.init(dtype: .uint8, shape: shape, data: Data(values))
        }

        /// The values as Float (F32 as is; F64 and integers converted).
        public func floats() -> [Float] {
            switch dtype {
            case .float32: return load(Float.self)
            case .float64: return load(Double.self).map(Float.init)
            case .int32: return load(Int32.self).map(Float.init)
            case .int64: return load(Int64.self).map(Float.init)
            case .uint8: return data.map(Float.init)
            }
        }

        /// The values as Double (exact for F32, F64 and integers up to 2^53).
        public func doubles() -> [Double] {
            switch dtype {
            case .float32: return load(Float.self).map(Double.init)
            case .float64: return load(Double.self)
            case .int32: return load(Int32.self).map(Double.init)
            case .int64: return load(Int64.self).map(Double.init)
            case .uint8: return data.map(Double.init)
            }
        }

        /// The values as Int (integers as is; floats truncated).
        public func integers() -> [Int] {
            switch dtype {
            case .int32: return load(Int32.self).map(Int.init)
            case .int64: return load(Int64.self).map(Int.init)
            case .uint8: return data.map(Int.init)
            case .float32: return load(Float.self).map { Int($0) }
            case .float64: return load(Double.self).map { Int($0) }
            }
        }

        private func load<T>(_ type: T.Type) -> [T] {
            data.withUnsafeBytes { raw in
                Array(UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: T.self),
                                          count: raw.count / MemoryLayout<T>.stride))
            }
        }
    }

    /// Why a safetensors file could not be read.
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case malformed(path: String, reason: String)

        public var description: String {
            switch self {
            case .unreadable(let path, let reason): "\(path): cannot read: \(reason)"
            case .malformed(let path, let reason): "\(path): not a valid safetensors file: \(reason)"
            }
        }
    }

    public var tensors: [String: Tensor]
    public var metadata: [String: String]

    public init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Reads a file; every structural problem is a `Failure.malformed` naming the file.
    public init(contentsOf path: String) throws(Failure) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw .unreadable(path: path, reason: error.localizedDescription)
        }
        try self.init(data: data, path: path)
    }

    init(data: Data, path: String) throws(Failure) {
        guard data.count >= 8 else { throw .malformed(path: path, reason: "shorter than its 8-byte header length") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw .malformed(path: path, reason: "header length \(headerLength) exceeds the file (truncated?)")
        }
        let headerEnd = 8 + Int(headerLength)
        guard let header = try? JSONSerialization.jsonObject(with: data[8..<headerEnd]) as? [String: Any] else {
            throw .malformed(path: path, reason: "header is not a JSON object")
        }
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        let body = data[headerEnd...]
        for (name, value) in header {
            guard let entry = value as? [String: Any] else { throw .malformed(path: path, reason: "entry \(name) is not an object") }
            if name == "__metadata__" {
                for (key, item) in entry {
                    guard let text = item as? String else { throw .malformed(path: path, reason: "metadata \(key) is not a string") }
                    metadata[key] = text
                }
                continue
            }
            guard let dtypeName = entry["dtype"] as? String, let dtype = DType(rawValue: dtypeName) else {
                throw .malformed(path: path, reason: "tensor \(name) has an unsupported dtype \(entry["dtype"] ?? "none")")
            }
            guard let shape = (entry["shape"] as? [NSNumber])?.map(\.intValue),
                  let offsets = (entry["data_offsets"] as? [NSNumber])?.map(\.intValue), offsets.count == 2 else {
                throw .malformed(path: path, reason: "tensor \(name) lacks shape or data_offsets")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= body.count,
                  end - begin == shape.reduce(1, *) * dtype.size else {
                throw .malformed(path: path, reason: "tensor \(name): data range \(begin)..<\(end) does not fit shape \(shape) or the file")
            }
            let start = body.startIndex + begin
            tensors[name] = Tensor(dtype: dtype, shape: shape, data: Data(body[start..<(start + end - begin)]))
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The named tensor, or `Failure.malformed` naming what is missing.
    public func tensor(_ name: String, in path: String) throws(Failure) -> Tensor {
        guard let tensor = tensors[name] else { throw .malformed(path: path, reason: "no tensor \"\(name)\"") }
        return tensor
    }

    /// The encoded file: header (names sorted, padded to 8 bytes) and data.
    public func encoded() throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var body = Data()
        for name in tensors.keys.sorted() {
            let tensor = tensors[name]!
            header[name] = ["dtype": tensor.dtype.rawValue, "shape": tensor.shape,
                            "data_offsets": [body.count, body.count + tensor.data.count]]
            body.append(tensor.data)
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var result = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { result.append(contentsOf: $0) }
        result.append(json)
        result.append(body)
        return result
    }
}
