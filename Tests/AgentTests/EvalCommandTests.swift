import Foundation
import Testing

/// `mrsort eval` on the real set, through the built command.
@Suite("mrsort eval")
struct EvalCommandTests {
    @Test("Per-source figures: each source of labels' folders, summing to the pooled ones")
    func perSource() throws {
        let result = try run(Paths.mrsort, ["eval", Paths.realData, "--labels", Paths.realData + "/labels.csv", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        let sources = try #require(report["sources"] as? [[String: Any]])
        let series = try #require(report["series"] as? Int)
        let ensemble = try #require(report["ensemble"] as? [String: Any])
        let accuracy = try #require(ensemble["accuracy"] as? Double)
        #expect(sources.count > 5)
        #expect(sources.compactMap { $0["series"] as? Int }.reduce(0, +) == series)
        #expect(sources.compactMap { $0["ensemble"] as? Int }.reduce(0, +) == Int((accuracy * Double(series)).rounded()))
        // The sources are the folder names before `__`, as leave-one-source-out splits them.
        let folders = try FileManager.default.contentsOfDirectory(atPath: Paths.realData).filter { $0.contains("__") }
        let names = Set(folders.map { $0.components(separatedBy: "__")[0] })
        #expect(Set(sources.compactMap { $0["source"] as? String }).isSubset(of: names))
        #expect(sources.contains { $0["source"] as? String == "dcm_qa_philips" })

        let table = try run(Paths.mrsort, ["eval", Paths.realData, "--labels", Paths.realData + "/labels.csv"]).output
        #expect(table.contains("per source (the folder name before `__`)"))
    }
}
