import Clocks
import Dispatch
import Logging
import SemtechUDP
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Serves the metrics to Prometheus: `GET /metrics` over HTTP/1.1 on `[metrics] bind`. One
/// thread of its own takes one connection at a time; a request must arrive whole, at most
/// 8 KiB of it, within 2 seconds, and each write of the answer must go within 2 seconds, or the
/// connection is closed. Anything else than a GET or HEAD of `/metrics` gets its HTTP error and is counted,
/// so a port scanner or a slow client costs a moment of that thread and nothing else.
public final class MetricsServer: Service, Sendable {
    public static let maximumRequest = 8192
    public static let requestPatience: Int32 = 2_000

    /// Where it listens: `[metrics] bind`.
    public let address: SocketAddress
    private let render: @Sendable () async -> String
    private let onRefusal: @Sendable () -> Void
    private let logger: Logger
    /// Refused requests are said within this budget: five, then one a minute.
    private let refusalLog = RefusalLimiter(burst: 5, perSecond: 1.0 / 60)
    private let stopping = Atomic(false)
    private let finished = Atomic(false)
    private let refusedCount = Atomic(0)

    /// `onRefusal` counts a refused request (in the metrics themselves).
    public init(
        address: SocketAddress, logger: Logger, onRefusal: @escaping @Sendable () -> Void = {},
        render: @escaping @Sendable () async -> String
    ) {
        self.address = address
        self.logger = logger
        self.onRefusal = onRefusal
        self.render = render
    }

    /// Requests answered with an error (bad, too large, too slow, another path or method).
    public var refused: Int { refusedCount.load(ordering: .relaxed) }

    public func run() async throws {
        let thread = try DedicatedThread(name: "metrics") { [self] in
            serve()
            finished.store(true, ordering: .sequentiallyConsistent)
        }
        await withGracefulShutdownHandler {
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                try? await Task.sleep(for: .milliseconds(250))
            }
        } onGracefulShutdown: {
        }
        stopping.store(true, ordering: .relaxed)
        // Waited for without holding a thread of the pool: a request under way may take seconds.
        while !finished.load(ordering: .sequentiallyConsistent) { try? await Task.sleep(for: .milliseconds(50)) }
        thread.join()
    }

    /// Listens, retrying every 10 s while the address cannot be had; serves until stopped.
    private func serve() {
        var said = false
        while !stopping.load(ordering: .relaxed) {
            switch listen() {
            case .success(let fd):
                logger.info("metrics served", metadata: ["address": "http://\(address)/metrics"])
                acceptLoop(fd)
                close(fd)
                return
            case .failure(let problem):
                if !said {
                    logger.error("metrics: cannot listen on \(address): \(problem); trying every 10 s")
                    said = true
                }
                for _ in 0..<40 where !stopping.load(ordering: .relaxed) { usleep(250_000) }
            }
        }
    }

    private func listen() -> Result<Int32, MetricsListenError> {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(MetricsListenError(String(cString: strerror(errno)))) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard address.withSockaddr({ bind(fd, $0, $1) }) == 0, Glibc.listen(fd, 16) == 0 else {
            let problem = String(cString: strerror(errno))
            close(fd)
            return .failure(MetricsListenError(problem))
        }
        return .success(fd)
    }

    private func acceptLoop(_ listener: Int32) {
        while !stopping.load(ordering: .relaxed) {
            var ready = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 250) == 1 else { continue }
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { continue }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            handle(connection)
            closeGently(connection)
        }
    }

    /// Closes after the answer has gone: the writing side first, then what the client still
    /// sends is read and dropped (at most 64 KiB, for at most 200 ms), so that unread bytes do
    /// not make the kernel reset the connection before the client has read the answer.
    private func closeGently(_ connection: Int32) {
        shutdown(connection, Int32(SHUT_WR))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = monotonicNanoseconds() + 200_000_000
        var drained = 0
        while drained < 65_536 {
            let now = monotonicNanoseconds()
            guard now < deadline else { break }
            var ready = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, Int32((deadline - now) / 1_000_000) + 1) == 1 else { break }
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            drained += count
        }
        close(connection)
    }

    /// Reads one request and answers it.
    private func handle(_ connection: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        let deadline = monotonicNanoseconds() + UInt64(Self.requestPatience) * 1_000_000
        var buffer = [UInt8](repeating: 0, count: 2048)
        var verdict = Self.judge(request)
        while verdict == .incomplete {
            let now = monotonicNanoseconds()
            guard now < deadline else { return refuse(connection, 408, "Request Timeout") }
            var ready = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, Int32((deadline - now) / 1_000_000) + 1) == 1 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard count > 0 else {
                self.count(refusal: "closed before its request was whole")
                return
            }
            request += buffer[0..<count]
            verdict = Self.judge(request)
        }
        let head: Bool
        switch verdict {
        case .incomplete: return
        case .refused(let code, let reason): return refuse(connection, code, reason)
        case .metrics(let isHead): head = isHead
        }
        guard let body = renderWaiting() else { return refuse(connection, 503, "Service Unavailable") }
        respond(
            connection, status: "200 OK", type: "text/plain; version=0.0.4; charset=utf-8", body: Array(body.utf8),
            head: head)
    }

    /// What to do with the bytes of a request read so far.
    public enum Verdict: Equatable, Sendable {
        /// The header has not ended yet, and may still.
        case incomplete
        /// A GET (or a HEAD, true) of `/metrics`.
        case metrics(head: Bool)
        case refused(Int, String)
    }

    /// Judges a request's bytes: its header must end within `maximumRequest` bytes, and be a
    /// GET or HEAD of `/metrics` over HTTP/1.x.
    public static func judge(_ request: [UInt8]) -> Verdict {
        guard request.containsHeaderEnd else {
            return request.count < maximumRequest ? .incomplete : .refused(431, "Request Header Fields Too Large")
        }
        let line = request.prefix { $0 != UInt8(ascii: "\r") }.split(separator: UInt8(ascii: " "))
        guard line.count == 3, line[2].starts(with: Array("HTTP/1.".utf8)) else { return .refused(400, "Bad Request") }
        let method = String(decoding: line[0], as: UTF8.self)
        let path = String(decoding: line[1], as: UTF8.self)
        guard method == "GET" || method == "HEAD" else { return .refused(405, "Method Not Allowed") }
        guard path == "/metrics" || path.hasPrefix("/metrics?") else { return .refused(404, "Not Found") }
        return .metrics(head: method == "HEAD")
    }

    /// The metrics, made by the agent's tasks while this thread waits (at most 5 s).
    private func renderWaiting() -> String? {
        let result = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        let render = self.render
        Task {
            let text = await render()
            result.withLock { $0 = text }
            done.signal()
        }
        guard done.wait(timeout: .now() + 5) == .success else { return nil }
        return result.withLock { $0 }
    }

    private func count(refusal: String) {
        refusedCount.add(1, ordering: .relaxed)
        onRefusal()
        let (say, unsaid) = refusalLog.admit()
        guard say else { return }
        var metadata: Logger.Metadata = ["refused": "\(refused)"]
        if unsaid > 0 { metadata["not_logged_before"] = "\(unsaid)" }
        logger.notice("metrics: a request refused: \(refusal)", metadata: metadata)
    }

    private func refuse(_ connection: Int32, _ code: Int, _ reason: String) {
        count(refusal: "\(code) \(reason)")
        respond(
            connection, status: "\(code) \(reason)", type: "text/plain; charset=utf-8",
            body: Array("\(reason): hotspotd serves GET /metrics only\n".utf8), head: false)
    }

    private func respond(_ connection: Int32, status: String, type: String, body: [UInt8], head: Bool) {
        let header = Array(
            "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
                .utf8)
        let bytes = header + (head ? [] : body)
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes {
                send(connection, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else { return }
            sent += count
        }
    }
}

struct MetricsListenError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension [UInt8] {
    /// Whether an HTTP request's header has ended (a blank line).
    fileprivate var containsHeaderEnd: Bool {
        guard count >= 4 else { return false }
        for index in 0...(count - 4)
        where self[index] == 13 && self[index + 1] == 10 && self[index + 2] == 13 && self[index + 3] == 10 {
            return true
        }
        return false
    }
}
