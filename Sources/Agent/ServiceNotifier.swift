#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// systemd's notify protocol without libsystemd: datagrams such as `READY=1`, `WATCHDOG=1`,
/// `STOPPING=1` and `STATUS=…` sent to the Unix socket named by `$NOTIFY_SOCKET`.
/// Does nothing when the variable is unset (not started by systemd with `Type=notify`).
public struct ServiceNotifier: Sendable {
    let socketPath: String?
    /// How often systemd expects `WATCHDOG=1` (half of `$WATCHDOG_USEC`), when it does.
    public let watchdogInterval: Double?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        let forThisProcess = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if forThisProcess, let micros = environment["WATCHDOG_USEC"].flatMap(Double.init), micros > 0 {
            watchdogInterval = micros / 2e6
        } else {
            watchdogInterval = nil
        }
    }

    /// Sends one message; returns false when it could not be sent (or there is no socket).
    @discardableResult
    public func notify(_ message: String) -> Bool {
        guard var path = socketPath else { return false }
        // A leading '@' names a socket in the abstract namespace.
        let abstract = path.hasPrefix("@")
        if abstract { path.removeFirst() }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count + (abstract ? 1 : 0) < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: abstract ? [0] + bytes : bytes)
        }
        let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + bytes.count + (abstract ? 1 : 0))
        let payload = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, payload, payload.count, 0, $0, length) }
        }
        return sent == payload.count
    }
}
