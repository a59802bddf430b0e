import ArgumentParser

@main
struct MRSort: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mrsort",
        abstract: "Classify brain MRI DICOM series and route them.",
        version: "0.1.0",
        subcommands: [Inspect.self, Classify.self, Dataset.self, Eval.self, Watch.self, CheckConfig.self, Status.self, Relabel.self]
    )
}
