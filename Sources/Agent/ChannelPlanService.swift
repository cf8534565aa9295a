import Clocks
import Foundation
import Logging
import Messages
import Radio
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Applies the network server's channel plans where the backend can take them: an SPI radio
/// is retuned; a packet forwarder gets the plan written into its `global_conf.json`
/// (`semtech_udp.forwarder_config`) and is restarted (`semtech_udp.forwarder_unit`); without
/// those, a plan is refused. A plan is refused whole, with its reason, when the region or the
/// hardware cannot honour it, and the plan in force stays. An applied plan is kept in the data
/// directory, so a restart keeps it, and its version goes into every `event/stats`.
public final class ChannelPlanService: Sendable {
    public enum Target: Sendable {
        case radio(SPIRadio, base: RadioConfiguration)
        case forwarder(configuration: String, unit: String)
        /// No way to apply a plan, and why.
        case none(String)
    }

    public enum Outcome: Sendable, Equatable {
        case applied(version: String)
        /// The plan in force already has this version: nothing was changed.
        case unchanged(version: String)
        case refused(ChannelPlanRefusal)
    }

    private let target: Target
    private let region: Region
    private let gatewayID: String
    private let dataDirectory: String
    private let logger: Logger
    private let restartCommand: [String]
    private struct State {
        var version: String?
        var refusals = 0
        /// The last plan refused after an attempt to apply it (a forwarder that would not
        /// restart, a radio that did not take it): the same version is refused again at once
        /// for an hour, rather than rewriting and restarting at every stats report.
        var failed: (version: String, refusal: ChannelPlanRefusal, at: UInt64)?
        /// A plan waiting while another is being applied: only the newest is kept.
        var pending: Gw_GatewayConfiguration?
        var applying = false
    }
    private let state = Mutex(State())
    /// How long a plan that failed to apply is refused at once when it comes again.
    public static let retryAfter: Duration = .seconds(3600)

    public static let fileName = "channel-plan.pb"

    /// `restartCommand` restarts the forwarder's unit (the unit's name is appended).
    public init(
        target: Target, region: Region, gatewayID: String, dataDirectory: String, logger: Logger,
        restartCommand: [String] = ["systemctl", "restart"]
    ) {
        self.target = target
        self.region = region
        self.gatewayID = gatewayID
        self.dataDirectory = dataDirectory
        self.logger = logger
        self.restartCommand = restartCommand
    }

    /// The version of the plan in force, for `event/stats` (`config_version`).
    public var version: String? { state.withLock { $0.version } }

    /// Plans refused since the start.
    public var refusals: Int { state.withLock { $0.refusals } }

    /// Refusals and repeats are said within this budget (five, then one a minute): anyone who
    /// may publish on `command/config` could otherwise fill the journal.
    private let refusalLog = RefusalLimiter(burst: 5, perSecond: 1.0 / 60)

    /// A message on `command/config` that is no plan at all: refused as such, counted, said
    /// within the budget.
    public func refuseUnreadable(_ reason: String) {
        state.withLock { $0.refusals += 1 }
        say { logger.warning("channel plan refused: \(reason)", metadata: $0) }
    }

    /// Says something within the refusal budget, with how many went unsaid before it.
    private func say(_ line: (Logger.Metadata) -> Void) {
        let (report, unsaid) = refusalLog.admit()
        guard report else { return }
        line(unsaid > 0 ? ["not_logged_before": "\(unsaid)"] : [:])
    }

    private var path: String { dataDirectory + "/" + Self.fileName }

    /// At start: the plan kept from before, applied again to an SPI radio (a forwarder's file
    /// holds it already). A kept plan the region no longer allows is set aside with a warning.
    public func restore() async {
        guard let bytes = FileManager.default.contents(atPath: path) else { return }
        let message: Gw_GatewayConfiguration
        do {
            message = try Gw_GatewayConfiguration(serializedBytes: Array(bytes))
        } catch {
            logger.warning("the kept channel plan \(path) cannot be read: \(error); the configured channels stay")
            return
        }
        let plan: ChannelPlan
        switch ChannelPlan.decode(message, gatewayID: gatewayID) {
        case .success(let decoded): plan = decoded
        case .failure(let refusal):
            logger.warning("the kept channel plan \(path) is not usable: \(refusal); the configured channels stay")
            return
        }
        if let refusal = plan.problem(in: region) {
            logger.warning("the kept channel plan \(plan.version) does not suit \(region.name.displayName): \(refusal)")
            return
        }
        if case .radio(let radio, let base) = target {
            guard case .success(let configuration) = plan.radioConfiguration(from: base) else { return }
            do {
                try await radio.retune(to: configuration)
            } catch {
                logger.warning("the kept channel plan \(plan.version) could not be applied: \(error.message)")
                return
            }
        }
        state.withLock { $0.version = plan.version }
        logger.info("channel plan \(plan.version) in force, as kept", metadata: ["CHANNELS": "\(describe(plan))"])
    }

    /// Takes a plan from the broker without waiting for it to be applied (a forwarder's restart
    /// takes seconds, and the commands behind it on the broker must not wait): applied in the
    /// background, one at a time; a plan that comes while another is being applied waits, and
    /// a newer one replaces it.
    public func submit(_ message: Gw_GatewayConfiguration) {
        let start = state.withLock { state -> Bool in
            state.pending = message
            guard !state.applying else { return false }
            state.applying = true
            return true
        }
        guard start else { return }
        Task {
            while let next = state.withLock({ state -> Gw_GatewayConfiguration? in
                defer { state.pending = nil }
                if state.pending == nil { state.applying = false }
                return state.pending
            }) {
                await handle(next)
            }
        }
    }

    /// Applies a `gw.GatewayConfiguration` from the network server, or refuses it, and says
    /// which in the log.
    @discardableResult
    public func handle(_ message: Gw_GatewayConfiguration) async -> Outcome {
        let outcome = await apply(message)
        switch outcome {
        case .applied(let version):
            logger.notice("channel plan \(version) applied")
        case .unchanged(let version):
            say { logger.info("channel plan \(version) is in force already", metadata: $0) }
        case .refused(let refusal):
            state.withLock { $0.refusals += 1 }
            let name = message.version.isEmpty ? "(no version)" : message.version
            let inForce = version ?? "the configured channels"
            say { metadata in
                logger.warning(
                    "channel plan \(name) refused: \(refusal)",
                    metadata: metadata.merging(["IN_FORCE": "\(inForce)"]) { $1 })
            }
        }
        return outcome
    }

    private func apply(_ message: Gw_GatewayConfiguration) async -> Outcome {
        if let failed = state.withLock({ $0.failed }), !message.version.isEmpty, failed.version == message.version,
            monotonicNanoseconds() < failed.at + UInt64(Nanoseconds.of(Self.retryAfter))
        {
            return .refused(.init("\(failed.refusal) (it failed within the hour; not tried again yet)"))
        }
        let outcome = await attempt(message)
        if case .refused(let refusal) = outcome, refusal.afterAttempt {
            state.withLock { $0.failed = (message.version, refusal, monotonicNanoseconds()) }
        }
        return outcome
    }

    private func attempt(_ message: Gw_GatewayConfiguration) async -> Outcome {
        let plan: ChannelPlan
        switch ChannelPlan.decode(message, gatewayID: gatewayID) {
        case .success(let decoded): plan = decoded
        case .failure(let refusal): return .refused(refusal)
        }
        if let refusal = plan.problem(in: region) { return .refused(refusal) }
        if !plan.version.isEmpty, plan.version == version { return .unchanged(version: plan.version) }
        switch target {
        case .none(let reason):
            return .refused(.init(reason))
        case .radio(let radio, let base):
            let configuration: RadioConfiguration
            switch plan.radioConfiguration(from: base) {
            case .success(let found): configuration = found
            case .failure(let refusal): return .refused(refusal)
            }
            do {
                try await radio.retune(to: configuration)
            } catch {
                return .refused(.init("the radio did not take it: \(error.message)", afterAttempt: true))
            }
            logger.info(
                "radio retuned",
                metadata: ["frequency": "\(configuration.frequencyHz)", "data_rate": "\(configuration.dataRate)"])
        case .forwarder(let file, let unit):
            if let refusal = await rewrite(file, unit: unit, plan: plan) { return .refused(refusal) }
        }
        keep(plan)
        state.withLock { $0.version = plan.version }
        logger.info("channel plan \(plan.version)", metadata: ["CHANNELS": "\(describe(plan))"])
        return .applied(version: plan.version)
    }

    /// Writes the plan into the forwarder's configuration and restarts it; on any failure the
    /// file is put back as it was.
    private func rewrite(_ file: String, unit: String, plan: ChannelPlan) async -> ChannelPlanRefusal? {
        guard let old = FileManager.default.contents(atPath: file) else {
            return .init("cannot read the forwarder's configuration \(file)")
        }
        let text: String
        switch ForwarderConfiguration.rewrite(Array(old), with: plan) {
        case .success(let written): text = written
        case .failure(let refusal): return refusal
        }
        // The file as it came, once, beside it: what the forwarder's package installed.
        let original = file + ".orig"
        if !FileManager.default.fileExists(atPath: original) {
            _ = replaceFile(original, with: Array(old))
        }
        if let problem = replaceFile(file, with: Array(text.utf8), like: file) {
            return .init("cannot write \(file): \(problem)")
        }
        let result = await runProgram(restartCommand + [unit], timeout: .seconds(60))
        guard result.status == 0 else {
            // The file back as it was, and the forwarder started again on it: a failed restart
            // may have left it stopped.
            _ = replaceFile(file, with: Array(old), like: file)
            let again = await runProgram(restartCommand + [unit], timeout: .seconds(60))
            let said = result.output.split(separator: "\n").last.map { ": \($0)" } ?? ""
            let back =
                again.status == 0 ? "restarted on it" : "restarting it again failed too (\(again.describeStatus))"
            return .init(
                "restarting \(unit) failed (\(result.describeStatus))\(said); \(file) is as it was, \(back)",
                afterAttempt: true)
        }
        return nil
    }

    private func keep(_ plan: ChannelPlan) {
        guard let bytes = try? plan.message(gatewayID: gatewayID).serializedBytes() as [UInt8] else { return }
        if let problem = replaceFile(path, with: bytes) {
            logger.error("cannot keep channel plan \(plan.version) in \(path): \(problem); a restart will forget it")
        }
    }

    private func describe(_ plan: ChannelPlan) -> String {
        plan.channels.map { channel in
            let megahertz = Double(channel.frequencyHz) / 1_000_000
            switch channel.modulation {
            case .lora(let bandwidth, let factors):
                return "\(megahertz) MHz SF\(factors.map(String.init).joined(separator: "/"))/\(bandwidth / 1000) kHz"
            case .fsk(_, let rate):
                return "\(megahertz) MHz FSK \(rate / 1000) kbit/s"
            }
        }.joined(separator: ", ")
    }
}

/// Replaces `path` with `bytes` atomically (a temporary file, renamed over it); nil, or what
/// failed. `durable`: synced to the disk before the rename (not for a file rewritten every few
/// seconds on an SD card, which a power cut may leave old but never torn). `like`: an existing
/// file whose permissions the new one takes (whatever the umask). When `path` is a symbolic
/// link, the file it points to is replaced, not the link.
func replaceFile(
    _ given: String, with bytes: [UInt8], mode: mode_t = 0o644, durable: Bool = true, like model: String? = nil
) -> String? {
    var path = given
    if let resolved = realpath(given, nil) {
        path = String(cString: resolved)
        free(resolved)
    }
    let temporary = path + ".tmp"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { return String(cString: strerror(errno)) }
    var information = stat()
    if let model, stat(model, &information) == 0 { fchmod(fd, information.st_mode & 0o7777) }
    var written = 0
    while written < bytes.count {
        let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
        guard count > 0 else {
            let problem = String(cString: strerror(errno))
            close(fd)
            unlink(temporary)
            return problem
        }
        written += count
    }
    if durable { fsync(fd) }
    close(fd)
    guard rename(temporary, path) == 0 else {
        let problem = String(cString: strerror(errno))
        unlink(temporary)
        return problem
    }
    return nil
}

/// What a program said and how it ended.
struct ProgramResult: Sendable {
    /// The exit status; −signal when a signal ended it; −1000 when it could not start or did
    /// not end in time.
    var status: Int32
    var output: String

    var describeStatus: String {
        switch status {
        case -1000: "it did not run or did not end"
        case ..<0: "signal \(-status)"
        default: "exit status \(status)"
        }
    }
}

/// Runs `command` (the program looked up in PATH) with its output captured, up to `timeout`;
/// waits without holding a thread.
func runProgram(_ command: [String], timeout: Duration) async -> ProgramResult {
    let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent(
        "hotspotd-program-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    ).path
    defer { unlink(outputPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv = command.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    guard posix_spawnp(&pid, command[0], &actions, nil, argv, environ) == 0 else {
        return ProgramResult(status: -1000, output: "cannot run \(command[0])")
    }
    let deadline = ContinuousClock.now + timeout
    var status: Int32 = 0
    while waitpid(pid, &status, WNOHANG) != pid {
        if ContinuousClock.now > deadline {
            kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
            return ProgramResult(status: -1000, output: "\(command[0]) did not end within \(timeout)")
        }
        try? await Task.sleep(for: .milliseconds(20))
    }
    let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    let code = status & 0x7F == 0 ? (status >> 8) & 0xFF : -(status & 0x7F)
    return ProgramResult(status: code, output: output.trimmingCharacters(in: .whitespacesAndNewlines))
}
