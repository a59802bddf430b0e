import ArgumentParser
import Foundation

@main
struct MRSort: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mrsort",
        abstract: "Classify brain MRI DICOM series and route them.",
        discussion: """
        Exit status: 0 success; 64 usage error; 65 bad input data (no DICOM file among the files \
        given, a broken labels.csv, a series relabel does not know); 66 a missing, unreadable or \
        empty input (a file or folder, the configuration included; status before the agent ever \
        ran); 78 an invalid configuration or model file; 1 any other failure.
        """,
        version: "0.1.0",
        subcommands: [Inspect.self, Classify.self, Dataset.self, Eval.self, Watch.self, Receive.self, CheckConfig.self, Status.self, Relabel.self]
    )

    /// ArgumentParser's `main`, with the exit statuses of `ExitStatus` for errors in the data or
    /// the configuration (ArgumentParser gives every error that is not its own status 1).
    static func main() async {
        do {
            var command = try await asyncParseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            guard let status = ExitStatus.of(error) else { exit(withError: error) }
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            Foundation.exit(status)
        }
    }
}
