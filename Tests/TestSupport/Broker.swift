import Foundation

/// A real mosquitto broker on a free loopback port, for end-to-end tests. It can be stopped
/// and started again on the same port, with its persistence (so that persistent sessions
/// survive the restart, as they would on a real broker).
public final class Broker: @unchecked Sendable {
    public private(set) var port: Int
    public let directory: URL
    private var pid: pid_t?
    private let extraConfiguration: String

    /// `configuration` is added to the listener's block (TLS options, say).
    public init(port: Int? = nil, configuration: String = "") throws {
        self.port = try port ?? Self.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-broker-\(self.port)-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        extraConfiguration = configuration
        // A port found free can be taken by someone else's outgoing connection before the
        // broker binds it: then try another, when the caller did not ask for this one.
        for attempt in 1...3 {
            do {
                try start()
                return
            } catch  where port == nil && attempt < 3 {
                stop()
                self.port = try Self.freePort()
            }
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    public static var executable: String {
        ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        } ?? "mosquitto"
    }

    public func start() throws {
        let configuration = """
            persistence true
            persistence_location \(directory.path)/
            autosave_interval 1
            log_dest none
            listener \(port) 127.0.0.1
            allow_anonymous true
            \(extraConfiguration)
            """
        // mosquitto started as root drops to its own user: let it write its persistence here.
        chmod(directory.path, 0o777)
        let file = directory.appendingPathComponent("mosquitto.conf")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        let spawned = try spawn(Self.executable, ["-c", file.path])
        pid = spawned
        for _ in 0..<500 {
            if Self.accepts(port: port) { return }
            var status: Int32 = 0
            if waitpid(spawned, &status, WNOHANG) == spawned {
                pid = nil
                throw BrokerError("mosquitto exited (status \(status)) instead of listening on port \(port)")
            }
            usleep(20_000)
        }
        throw BrokerError("mosquitto did not listen on port \(port)")
    }

    /// Stops the broker (SIGTERM: it saves its persistence and says nothing to clients).
    public func stop() {
        guard let pid else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<250 {
            if waitpid(pid, &status, WNOHANG) == pid { break }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, WNOHANG)
        self.pid = nil
    }

    /// Kills the broker (SIGKILL): no goodbye to clients, nothing saved since the last autosave.
    public func crash() {
        guard let pid else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        self.pid = nil
    }

    public var isRunning: Bool { pid != nil }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is answered.
    public func pause() {
        if let pid { kill(pid, SIGSTOP) }
    }

    /// Lets a paused broker go on (SIGCONT).
    public func resume() {
        if let pid { kill(pid, SIGCONT) }
    }

    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw BrokerError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

public struct BrokerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Starts a program with posix_spawn, its output discarded (or appended to `logFile`), with a
/// clean signal mask and the given extra environment; returns its pid. Stop it with `kill`,
/// reap it with `waitForExit`.
public func spawn(
    _ executable: String, _ arguments: [String], environment extra: [String: String] = [:], logFile: String? = nil
) throws -> pid_t {
    var pid: pid_t = 0
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, logFile ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var merged = ProcessInfo.processInfo.environment
    for (key, value) in extra { merged[key] = value }
    let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for pointer in envp { free(pointer) } }
    var attributes = cleanSignalAttributes()
    defer { posix_spawnattr_destroy(&attributes) }
    let code = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    guard code == 0 else { throw BrokerError("cannot start \(executable): \(String(cString: strerror(code)))") }
    return pid
}

/// Waits up to `seconds` for `pid` to exit; its exit status, or nil (still running).
public func waitForExit(_ pid: pid_t, seconds: Double) -> Int32? {
    var status: Int32 = 0
    let deadline = Date().addingTimeInterval(seconds)
    // Looked at once at least, so that `seconds: 0` asks "has it ended?".
    repeat {
        if waitpid(pid, &status, WNOHANG) == pid {
            return status & 0x7F == 0 ? (status >> 8) & 0xFF : -(status & 0x7F)
        }
        usleep(20_000)
    } while Date() < deadline
    return nil
}

/// Spawn attributes that give the child an empty signal mask and default handlers: the thread
/// that spawns (a Dispatch worker) blocks signals, and a child inheriting that would ignore SIGTERM.
func cleanSignalAttributes() -> posix_spawnattr_t {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    return attributes
}

/// Runs a command to completion and returns its exit status and output; for openssl,
/// protoc, python3 and the like. Input, output and error go through temporary files, and the
/// wait is a plain waitpid, so it is safe on any thread.
@discardableResult
public func run(_ executable: String, _ arguments: [String], input: Data? = nil) throws -> (
    status: Int32, output: String, error: String
) {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent(
        "hotspotd-run-\(UInt32.random(in: 0...UInt32.max))")
    let inputPath = base.path + ".in"
    let outputPath = base.path + ".out"
    let errorPath = base.path + ".err"
    try (input ?? Data()).write(to: URL(fileURLWithPath: inputPath))
    defer {
        for path in [inputPath, outputPath, errorPath] { unlink(path) }
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, inputPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    var attributes = cleanSignalAttributes()
    defer { posix_spawnattr_destroy(&attributes) }
    let code = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
    guard code == 0 else { throw BrokerError("cannot start \(executable): \(String(cString: strerror(code)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    let error = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
    let exited = status & 0x7F == 0
    return (exited ? (status >> 8) & 0xFF : -1, output, error)
}

/// A subscriber (mosquitto_sub) writing down every message of some topics as "topic hex", a
/// line each, from when it was made until it is released.
public final class TopicRecorder: Sendable {
    public let file: String
    private let pid: pid_t

    public init(port: Int, topics: [String], file: String) throws {
        self.file = file
        pid = try spawn(
            "/usr/bin/mosquitto_sub",
            ["-h", "127.0.0.1", "-p", "\(port)", "-q", "1", "-F", "%t %x"] + topics.flatMap { ["-t", $0] },
            logFile: file)
    }

    deinit {
        kill(pid, SIGTERM)
        _ = waitForExit(pid, seconds: 5)
    }

    /// Every message so far, oldest first.
    public var messages: [(topic: String, payload: [UInt8])] {
        let lines = (try? String(contentsOfFile: file, encoding: .utf8))?.split(separator: "\n") ?? []
        return lines.compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2 else { return nil }
            let hex = Array(parts[1].utf8)
            guard hex.count % 2 == 0 else { return nil }
            let bytes = stride(from: 0, to: hex.count, by: 2).compactMap {
                UInt8(String(decoding: hex[$0...$0 + 1], as: UTF8.self), radix: 16)
            }
            return (String(parts[0]), bytes)
        }
    }
}
