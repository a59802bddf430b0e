#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// A study trigger's command, started the way a service manager starts one: in a process group of
/// its own, with every signal unblocked and at its default disposition, stdin from /dev/null and
/// stdout and stderr into a log file of its own.
///
/// A child inherits its spawning thread's signal mask and its parent's ignored signals; started
/// from an agent whose thread blocks SIGTERM (or under a parent that ignores it), a pipeline could
/// not be stopped by `timeout`, by its own alarms, or by systemd at shutdown. Its own process group
/// lets the agent stop the whole pipeline (the command and whatever it started) at its timeout.
struct PipelineProcess: Sendable {
    let pid: pid_t

    /// Starts `argv` (absolute path first, no shell) with `environment`, output to `log`.
    static func start(_ argv: [String], environment: [String: String], log: String) throws(FileSystemError) -> PipelineProcess {
        guard let program = argv.first else { throw FileSystemError(path: "", operation: "start command", reason: "empty argv") }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // Appending, so that `capLog` can cut the file back while the command writes.
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let arguments = argv.map { strdup($0) } + [nil]
        let variables = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            arguments.forEach { free($0) }
            variables.forEach { free($0) }
        }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, program, &actions, &attributes, arguments, variables)
        guard code == 0 else { throw FileSystemError(path: program, operation: "start command", code: code) }
        return PipelineProcess(pid: pid)
    }

    /// Waits for the process to end (on the calling thread) and returns its exit status, or
    /// 128 + the signal's number when a signal ended it, as shells report it.
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// Keeps a command's log at its first `limit` bytes and a line saying the rest was dropped:
    /// a pipeline that prints without end must not fill the state directory's file system. The
    /// command appends (`O_APPEND`), so its next write lands after the mark, to be cut at the
    /// next check.
    static func capLog(_ path: String, at limit: Int) {
        let mark = "\n[mrsort: output past \(limit >> 20) MiB dropped; the log keeps its beginning]\n"
        var status = stat()
        guard stat(path, &status) == 0, Int(status.st_size) > limit + mark.utf8.count else { return }
        guard truncate(path, off_t(limit)) == 0 else { return }
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = mark.withCString { write(fd, $0, strlen($0)) }
    }

    /// Sends `signal` to the whole process group: the command and what it started.
    func signalGroup(_ signal: Int32) {
        kill(-pid, signal)
    }
}

/// When the agent began stopping a command that ran past its timeout; shared between the agent
/// and the thread that waits for the command, which records the end as timed out.
final class PipelineStop: Sendable {
    private let time = Mutex<Date?>(nil)

    /// The time SIGTERM was sent, or nil while the command is within its time.
    var sent: Date? { time.withLock { $0 } }

    func mark(_ date: Date) {
        time.withLock { $0 = date }
    }
}
