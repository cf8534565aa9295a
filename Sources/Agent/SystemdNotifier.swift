#if canImport(Glibc)
    import Glibc
#endif

/// systemd's notification protocol (sd_notify): datagrams to `$NOTIFY_SOCKET`, a path or an
/// abstract socket ("@name"). Without the variable every call does nothing.
public struct SystemdNotifier: Sendable {
    public let socketPath: String?
    /// A third of `$WATCHDOG_USEC`: how often to ping, when systemd asked for pings; one late or
    /// skipped ping is not yet a timeout.
    public let watchdogInterval: Duration?

    public init(environment: [String: String]) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        watchdogInterval = environment["WATCHDOG_USEC"].flatMap(UInt64.init).map { .microseconds(Int64($0 / 3)) }
    }

    /// Sends `message`. Reports and pings never wait: a manager that does not read its socket
    /// must not stall the agent's threads (the next report supersedes this one, and missed
    /// pings are the manager's to act on). A state change that is said once (READY=1,
    /// STOPPING=1) may wait up to `patience` for room in the manager's queue.
    @discardableResult
    public func notify(_ message: String, patience: Duration? = nil) -> Bool {
        guard let socketPath else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }  // an abstract socket
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.enumerated() { buffer[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path.first == 0 ? 0 : 1))
        let bytes = Array(message.utf8)
        var flags = Int32(MSG_NOSIGNAL)
        if let patience {
            let (seconds, attoseconds) = patience.components
            var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        } else {
            flags |= Int32(MSG_DONTWAIT)
        }
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, flags, $0, length) }
        }
        return sent == bytes.count
    }
}
