import Foundation

enum Paths {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The shipped default models.
    static let forest = repositoryRoot + "/models/forest.safetensors"
    /// Rows and scikit-learn probabilities written by training/forest/train.py --fixture.
    static let forestParity = repositoryRoot + "/Tests/ClassificationTests/Fixtures/forest-parity.safetensors"

    static var realData: String {
        ProcessInfo.processInfo.environment["MRSORT_REALDATA"]
            ?? URL(fileURLWithPath: repositoryRoot).deletingLastPathComponent().appendingPathComponent("shared/realdata").path
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "mrsort-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
