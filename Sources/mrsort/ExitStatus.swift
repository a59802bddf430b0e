import Agent
import ArgumentParser
import Classification
import DICOM
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// mrsort's exit statuses, after sysexits(3), so that scripts and systemd can tell a mistake in
/// the call from one in the data or the configuration:
///
/// | status | name | when |
/// |---:|---|---|
/// | 0 | | success |
/// | 1 | | any other failure (a system error; another agent holds the state directory) |
/// | 64 | EX_USAGE | the command line is wrong (ArgumentParser's `ValidationError`, with the usage text) |
/// | 65 | EX_DATAERR | the input is there but wrong: no DICOM file among the files given, a broken labels.csv or status file, a series `relabel` does not know |
/// | 66 | EX_NOINPUT | an input file or folder, the configuration included, is missing, unreadable or empty; `status` before the agent ever ran |
/// | 78 | EX_CONFIG | the configuration or a model file is invalid |
enum ExitStatus {
    static let failure: Int32 = 1
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
    static let noInput: Int32 = 66
    static let configuration: Int32 = 78

    /// The status for an error a command threw; nil for ArgumentParser's own (usage errors, help,
    /// `ExitCode`), which it reports itself.
    static func of(_ error: Error) -> Int32? {
        switch error {
        case let failure as CommandFailure:
            return failure.status
        case let error as ConfigurationError:
            return readable(error.file) ? configuration : noInput
        case is ModelError:
            return configuration
        case let error as SeriesLabels.Failure:
            if case .unreadable(let path, _) = error, !readable(path) { return noInput }
            return dataError
        case let error as SafeTensors.Failure:
            if case .unreadable(let path, _) = error, !readable(path) { return noInput }
            return dataError
        case let error as DICOMError:
            switch error {
            case .unreadable, .isDirectory: return readable(error.path) ? dataError : noInput
            default: return dataError
            }
        case is DecodingError:
            return dataError
        default:
            // ValidationError (64), ExitCode, CleanExit and anything else (1): ArgumentParser's.
            return nil
        }
    }

    /// Whether `path` exists and can be read by this process.
    static func readable(_ path: String) -> Bool {
        access(path, R_OK) == 0
    }
}

/// A command that could not do its job for a reason in the data or the system, not in how it was
/// called: printed as `Error: …` without the usage text, with its exit status (`ExitStatus`).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    let status: Int32

    init(_ description: String, status: Int32 = ExitStatus.failure) {
        self.description = description
        self.status = status
    }
}
