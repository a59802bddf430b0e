import DICOM
import Foundation

/// The metadata random forest, loaded from the safetensors file that `training/forest` exports
/// from scikit-learn, and evaluated exactly as scikit-learn does: a sample goes left when its
/// float32 feature value is at most the node's float64 threshold, and the class probabilities
/// are the mean of the trees' normalised leaf values (stored sparse: most leaves hold one class).
public struct RandomForest: Sendable {
    public static let format = "mrsort-forest"
    public static let version = "1"

    /// The encoder of the columns the forest was trained on.
    public let features: MetadataFeatures
    /// Class of each probability column, in the model's order.
    public let classes: [SequenceClass]
    /// Free-form provenance from the export (command, figures), for reports.
    public let provenance: [String: String]

    /// One split or leaf; the four fields of a node side by side, for cache locality.
    private struct Node {
        var threshold: Double
        var feature: Int32
        /// Left child, or −1 for a leaf.
        var left: Int32
        var right: Int32
    }

    private let nodes: [Node]
    /// Leaf probabilities in compressed-row form: node n's non-zero probabilities are
    /// `leafProbability[leafStart[n]..<leafStart[n + 1]]` for the classes `leafClass[...]`.
    private let leafStart: [Int32]
    private let leafClass: [Int32]
    private let leafProbability: [Float]
    private let roots: [Int]

    public var treeCount: Int { roots.count }

    /// Loads and validates a model file.
    public init(contentsOf path: String) throws(ModelError) {
        let file = try SafeTensors.model(at: path)
        try file.requireFormat(Self.format, version: Self.version, path: path)
        let decoder = JSONDecoder()
        guard let vocabulary = FeatureVocabulary(metadata: file.metadata),
              let columnsJSON = file.metadata["columns"],
              let columns = try? decoder.decode([String].self, from: Data(columnsJSON.utf8)) else {
            throw .inconsistent(path: path, reason: "metadata lacks a readable vocabulary or column list")
        }
        let features: MetadataFeatures
        do {
            features = try MetadataFeatures(vocabulary: vocabulary, columns: columns)
        } catch {
            throw .featureMismatch(path: path, reason: error.description)
        }
        guard let classesJSON = file.metadata["classes"],
              let classNames = try? decoder.decode([String].self, from: Data(classesJSON.utf8)) else {
            throw .inconsistent(path: path, reason: "metadata lacks the class list")
        }
        var classes: [SequenceClass] = []
        for name in classNames {
            guard let sequence = SequenceClass(rawValue: name) else {
                throw .classMismatch(path: path, reason: "unknown class \"\(name)\"")
            }
            classes.append(sequence)
        }
        let feature = try file.modelTensor("feature", path: path).integers().map(Int32.init)
        let threshold = try file.modelTensor("threshold", path: path).doubles()
        let left = try file.modelTensor("left", path: path).integers().map(Int32.init)
        let right = try file.modelTensor("right", path: path).integers().map(Int32.init)
        let leafStart = try file.modelTensor("value_start", path: path).integers().map(Int32.init)
        let leafClass = try file.modelTensor("value_class", path: path).integers().map(Int32.init)
        let leafProbability = try file.modelTensor("value_probability", path: path).floats()
        let roots = try file.modelTensor("roots", path: path).integers()
        let nodes = feature.count
        guard threshold.count == nodes, left.count == nodes, right.count == nodes, leafStart.count == nodes + 1 else {
            throw .inconsistent(path: path, reason: "node arrays disagree in length (\(nodes) nodes)")
        }
        guard leafStart.first == 0, Int(leafStart.last!) == leafClass.count, leafClass.count == leafProbability.count,
              zip(leafStart, leafStart.dropFirst()).allSatisfy({ $0 <= $1 }),
              leafClass.allSatisfy({ (0..<Int32(classes.count)).contains($0) }) else {
            throw .inconsistent(path: path, reason: "leaf probabilities out of range")
        }
        guard !roots.isEmpty, roots.allSatisfy({ (0..<nodes).contains($0) }) else {
            throw .inconsistent(path: path, reason: "tree roots out of range")
        }
        for node in 0..<nodes {
            let isLeaf = left[node] < 0
            guard isLeaf == (right[node] < 0) else { throw .inconsistent(path: path, reason: "node \(node) has one child") }
            if !isLeaf {
                guard left[node] < nodes, right[node] < nodes, Int(left[node]) > node, Int(right[node]) > node,
                      feature[node] >= 0, Int(feature[node]) < columns.count else {
                    throw .inconsistent(path: path, reason: "node \(node) points outside the model")
                }
            }
        }
        self.features = features
        self.classes = classes
        self.provenance = file.metadata.filter { !["vocabulary", "columns", "classes"].contains($0.key) }
        self.nodes = (0..<nodes).map { Node(threshold: threshold[$0], feature: feature[$0], left: left[$0], right: right[$0]) }
        self.leafStart = leafStart
        self.leafClass = leafClass
        self.leafProbability = leafProbability
        self.roots = roots
    }

    /// Class probabilities of one encoded feature row (in `classes` order).
    public func probabilities(row: [Float]) -> [Double] {
        precondition(row.count == features.columns.count, "row has \(row.count) features, the forest \(features.columns.count)")
        let classCount = classes.count
        var sum = [Double](repeating: 0, count: classCount)
        nodes.withUnsafeBufferPointer { nodes in
            row.withUnsafeBufferPointer { row in
                for root in roots {
                    var node = nodes[root]
                    var index = root
                    while node.left >= 0 {
                        index = Int(Double(row[Int(node.feature)]) <= node.threshold ? node.left : node.right)
                        node = nodes[index]
                    }
                    for entry in Int(leafStart[index])..<Int(leafStart[index + 1]) {
                        sum[Int(leafClass[entry])] += Double(leafProbability[entry])
                    }
                }
            }
        }
        let trees = Double(roots.count)
        return sum.map { $0 / trees }
    }

    /// Class probabilities of one image.
    public func probabilities(_ header: ImageHeader) -> [Double] {
        probabilities(row: features.encode(header))
    }

    /// The most probable class of one image (ties: the first in model order, as numpy's argmax).
    public func predict(_ header: ImageHeader) -> SequenceClass {
        mostProbable(probabilities(header))
    }

    /// The class of the largest probability (ties: the first in model order).
    func mostProbable(_ probabilities: [Double]) -> SequenceClass {
        classes[probabilities.indices.max { probabilities[$0] < probabilities[$1] } ?? 0]
    }
}
