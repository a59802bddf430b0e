import Foundation
import Testing
@testable import Classification

@Suite("Random forest")
final class RandomForestTests {
    /// A folder of this test's own, for model files it writes; removed with the suite instance.
    let scratch: String

    init() throws { scratch = try Paths.temporaryDirectory() }

    deinit { try? FileManager.default.removeItem(atPath: scratch) }

    @Test("Swift probabilities equal scikit-learn's on the committed fixture rows (to 1e-6)")
    func parityWithScikitLearn() throws {
        let forest = try RandomForest(contentsOf: Paths.forest)
        let fixture = try SafeTensors(contentsOf: Paths.forestParity)
        let rows = try fixture.tensor("rows", in: Paths.forestParity)
        let expected = try fixture.tensor("probabilities", in: Paths.forestParity).doubles()
        let width = rows.shape[1]
        #expect(width == forest.features.columns.count)
        let values = rows.floats()
        var worst = 0.0
        for index in 0..<rows.shape[0] {
            let probabilities = forest.probabilities(row: Array(values[(index * width)..<((index + 1) * width)]))
            let reference = expected[(index * forest.classes.count)..<((index + 1) * forest.classes.count)]
            worst = max(worst, zip(probabilities, reference).map { abs($0 - $1) }.max() ?? 0)
        }
        #expect(rows.shape[0] >= 100)
        #expect(worst <= 1e-6, "largest difference \(worst)")
    }

    @Test("The model's classes are the taxonomy, in order")
    func classes() throws {
        #expect(try RandomForest(contentsOf: Paths.forest).classes == SequenceClass.allCases)
    }

    /// The shipped model with one change, written to a temporary file.
    func modified(_ change: (inout SafeTensors) throws -> Void) throws -> String {
        var file = try SafeTensors(contentsOf: Paths.forest)
        try change(&file)
        let path = scratch + "/forest.safetensors"
        try file.encoded().write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func missingFile() {
        #expect { try RandomForest(contentsOf: "/nonexistent/forest.safetensors") } throws: { error in
            if case ModelError.unreadable(let path, _) = error { path == "/nonexistent/forest.safetensors" } else { false }
        }
    }

    @Test func truncatedFile() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Paths.forest))
        let path = scratch + "/forest.safetensors"
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        #expect { try RandomForest(contentsOf: path) } throws: { error in
            if case ModelError.unreadable(_, let reason) = error { reason.contains("data range") } else { false }
        }
    }

    @Test func wrongVersion() throws {
        let path = try modified { $0.metadata["version"] = "99" }
        #expect(throws: ModelError.wrongFormat(path: path, expected: "mrsort-forest v1", found: "mrsort-forest v99")) {
            try RandomForest(contentsOf: path)
        }
    }

    @Test func notAForest() throws {
        let path = try modified { $0.metadata["format"] = "mrsort-cnn" }
        #expect { try RandomForest(contentsOf: path) } throws: { error in
            if case ModelError.wrongFormat = error { true } else { false }
        }
    }

    @Test("A vocabulary that does not give the model's columns is refused at load")
    func vocabularyMismatch() throws {
        let path = try modified { file in
            var vocabulary = try JSONDecoder().decode(FeatureVocabulary.self, from: Data(file.metadata["vocabulary"]!.utf8))
            vocabulary.imageType.append("SOMETHING_NEW")
            file.metadata["vocabulary"] = String(decoding: try JSONEncoder().encode(vocabulary), as: UTF8.self)
        }
        #expect { try RandomForest(contentsOf: path) } throws: { error in
            if case ModelError.featureMismatch = error { true } else { false }
        }
    }

    @Test("A model of an older feature layout loads and encodes its own columns")
    func olderLayout() throws {
        let forest = try RandomForest(contentsOf: Paths.forest)
        let columns = try JSONDecoder().decode([String].self, from: Data(try SafeTensors(contentsOf: Paths.forest).metadata["columns"]!.utf8))
        #expect(forest.features.columns == columns)
        // The shipped v8 forest predates layout v2: its rows are v1's, whatever this build adds.
        if forest.features.layout == .v1 {
            #expect(columns.count < MetadataFeatures(vocabulary: forest.features.vocabulary).columns.count)
        }
    }

    @Test("Columns of no known layout are refused at load")
    func unknownLayout() throws {
        let path = try modified { file in
            var columns = try JSONDecoder().decode([String].self, from: Data(file.metadata["columns"]!.utf8))
            columns.append("missing_count")
            file.metadata["columns"] = String(decoding: try JSONEncoder().encode(columns), as: UTF8.self)
        }
        #expect { try RandomForest(contentsOf: path) } throws: { error in
            if case ModelError.featureMismatch(_, let reason) = error { reason.contains("layout") } else { false }
        }
    }

    @Test func unknownClass() throws {
        let path = try modified { file in
            var classes = try JSONDecoder().decode([String].self, from: Data(file.metadata["classes"]!.utf8))
            classes[0] = "t1_weird"
            file.metadata["classes"] = String(decoding: try JSONEncoder().encode(classes), as: UTF8.self)
        }
        #expect(throws: ModelError.classMismatch(path: path, reason: "unknown class \"t1_weird\"")) {
            try RandomForest(contentsOf: path)
        }
    }

    @Test("A child index outside the model is refused at load")
    func childOutOfRange() throws {
        let path = try modified { file in
            var left = file.tensors["left"]!.integers().map(Int32.init)
            let inner = try #require(left.firstIndex { $0 >= 0 })
            left[inner] = Int32(left.count + 5)
            file.tensors["left"] = .init(left, shape: [left.count])
        }
        #expect { try RandomForest(contentsOf: path) } throws: { error in
            if case ModelError.inconsistent = error { true } else { false }
        }
    }
}
