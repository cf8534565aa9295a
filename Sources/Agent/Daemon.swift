import Coverage
import Credits
import Cryptography
import HAL
import HALLinux
import HALMock
import LoRaPHY
import Logging
import Messages
import Radio
import SemtechUDP
import ServiceLifecycle
import Store
import Synchronization
import Transport

#if canImport(Glibc)
import Glibc
#endif

/// Why the agent could not start, with the exit code that says so (78, EX_CONFIG, for a
/// configuration problem).
public struct StartError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var exitCode: Int32
    public init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
    public var description: String { message }
}

/// The running agent: the radio backend, the store, metering, MQTT, proof of coverage,
/// receipts, stats and systemd's notifications, wired together.
///
/// Frames flow radio → classify (beacon or uplink) → meter → store (with the outbox row) →
/// publisher → broker. `run()` returns when `shutDown()` has drained what it could.
///
/// It is a `Service`: in a `ServiceGroup`, the group's graceful shutdown calls `shutDown()`,
/// and cancelling it abandons the drain (what is stored stays stored for the next start).
public final class Daemon: Service, Sendable {
    public let configuration: Configuration
    public let identity: GatewayIdentity
    public let topics: Topics
    private let store: Store
    private let radio: any Radio
    private let board: (any BoardHardware)?
    private let meter: Meter
    private let statistics = TrafficStatistics()
    private let transport: MQTTTransport
    private let coverage: CoverageService
    private let receipts: ReceiptIssuer
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let state = Mutex(State())
    /// Received frames between the radio and the meter.
    private let inbox = FrameInbox()
    private let stopping = Mutex(false)

    struct State {
        var tasks: [Task<Void, Never>] = []
        /// The task that meters received frames: a shutdown waits for it to store what the radio
        /// had already handed over.
        var frameLoop: Task<Void, Never>?
        var tasksCancelled = false
        /// The stopped status has been written: nothing overwrites it with "running".
        var finalStatusWritten = false
        var lastUplinkNanoseconds: Int64 = 0
        var received = 0
        var forwarded = 0
        var refused = 0
        var lastAcknowledged = 0
        var lastDropped = 0
        var taken = 0
        var lastOutboxProgress: UInt64 = monotonicNanoseconds()
        var startedAt = wallClockNanoseconds() / 1_000_000_000
        /// Why the store refuses writes (a full disk, a read-only file), while it does.
        var storeFailure: String?
        /// Frames the store could not take since the start, and since the last log line saying so.
        var framesNotStored = 0
        var notStoredSinceReport = 0
        var lastStoreReport: UInt64 = 0
        /// Why status.json cannot be written, once logged.
        var statusFileFailure: String?
    }

    public static func wallClock() -> Int64 { wallClockNanoseconds() }

    /// Whether the radio is the mock board's simulated one.
    public var runsOnAMockBoard: Bool { board is MockBoard }

    /// Loads everything the configuration names and opens the radio; throws with an exit code.
    /// `air` is the mock board's simulated air, when something else (the demo's sensors)
    /// transmits into it; a mock board gets an air of its own otherwise.
    public init(configuration: Configuration, environment: [String: String], catalog: BoardCatalog, logger: Logger, air: Air? = nil) async throws(StartError) {
        self.configuration = configuration
        self.logger = logger
        notifier = SystemdNotifier(environment: environment)

        let key: Ed25519PrivateKey
        do {
            let (loaded, created) = try KeyFile.loadOrCreate(configuration.gateway.keyFile)
            key = loaded
            if created { logger.notice("created the gateway key", metadata: ["key_file": "\(configuration.gateway.keyFile)"]) }
        } catch {
            throw StartError(error.message, exitCode: 78)
        }
        let identity = GatewayIdentity(key: key, gatewayID: configuration.gateway.id)
        self.identity = identity
        processLogMetadata.withLock { $0["GATEWAY_ID"] = "\(identity.gatewayID)" }
        topics = Topics(prefix: configuration.mqtt.topicPrefix, gatewayID: identity.gatewayID)
        let encoding: MessageEncoding = configuration.mqtt.json ? .json : .protobuf

        do {
            store = try Store.open(directory: configuration.gateway.dataDirectory, outboxLimit: configuration.mqtt.outboxMaximum)
        } catch {
            throw StartError(error.message)
        }

        let profile: BoardProfile
        do {
            profile = try catalog.load(configuration.gateway.board)
        } catch where error.line == 0 && error.key.isEmpty && error.file == configuration.gateway.board {
            // No such profile: the problem is the configuration's gateway.board.
            throw StartError(configuration.error("gateway.board", error.message).description, exitCode: 78)
        } catch {
            throw StartError("\(error.description) (the board profile named by \(configuration.error("gateway.board", "").place))", exitCode: 78)
        }
        let region = configuration.gateway.region
        let radioLogger = Logger(label: "hotspotd.radio")
        switch profile.backend {
        case .semtechUDP:
            board = nil
            let settings = configuration.radio
            radio = SemtechUDPBackend(
                bind: configuration.semtechUDP.bind, region: region, trusted: configuration.semtechUDP.forwarders,
                forwarderSensesChannel: configuration.semtechUDP.listenBeforeTalk, makePolicy: { settings.policy(region: region) }, logger: radioLogger)
        case .sx127x, .sx126x:
            let hardware: any BoardHardware
            do {
                hardware = profile.hal == .mock ? try MockBoard(profile: profile, air: air ?? Air(timeScale: 1)) : LinuxBoard(profile: profile)
            } catch {
                throw StartError(error.message)
            }
            board = hardware
            do {
                radio = try SPIRadio(
                    board: hardware,
                    configuration: RadioConfiguration(frequencyHz: configuration.radio.frequencyHz, dataRate: configuration.radio.dataRate),
                    policy: configuration.radio.policy(region: region), logger: radioLogger,
                    timing: RadioTiming(healthCheckInterval: Self.healthCheckInterval(watchdog: notifier.watchdogInterval))
                )
            } catch {
                throw StartError(error.message)
            }
        }
        // Frames go to the inbox from the first one on, before `run()` starts metering them.
        await radio.deliver(to: inbox)
        do {
            try await radio.start()
        } catch {
            throw StartError("the radio did not start: \(error.message)")
        }

        meter = Meter(
            store: store, topics: topics, encoding: encoding,
            settings: MeterSettings(forwardUnpaired: configuration.credits.forwardUnpaired, chargeJoins: configuration.credits.chargeJoins),
            logger: Logger(label: "hotspotd.meter"), now: Self.wallClock
        )
        let commands = CommandProcessor(
            store: store, authority: CommandAuthority(authority: configuration.credits.authority, gatewayID: identity.gatewayID, sealingKey: identity.key.sealingKey),
            topics: topics, encoding: encoding, logger: Logger(label: "hotspotd.commands"), now: Self.wallClock,
            clockSynchronized: { ClockSynchronization.timesyncd() }
        )
        let meter = self.meter
        let downlinks = DownlinkHandler(
            radio: radio, store: store, topics: topics, encoding: encoding, logger: Logger(label: "hotspotd.downlink"),
            joinAccepted: { context in _ = try? await meter.chargeAnsweredJoin(context: context) })
        let mqtt = configuration.mqtt
        let settings = MQTTSettings(
            host: mqtt.host, port: mqtt.port, clientID: identity.gatewayID, protocolVersion: mqtt.protocolVersion,
            keepaliveSeconds: Int(mqtt.keepalive.components.seconds), username: mqtt.username, password: mqtt.password,
            caFile: mqtt.caCertificate, certificateFile: mqtt.tlsCertificate, keyFile: mqtt.tlsKey, maximumInFlight: mqtt.maximumInFlight
        )
        do {
            transport = try MQTTTransport(settings: settings, store: store, topics: topics, encoding: encoding, commands: commands, downlinks: downlinks, qos: mqtt.qos, logger: Logger(label: "hotspotd.mqtt"), now: Self.wallClock)
        } catch {
            throw StartError(error.message)
        }
        coverage = CoverageService(radio: radio, store: store, identity: identity, region: region, topics: topics, encoding: encoding, powerDBm: configuration.coverage.powerDBm, logger: Logger(label: "hotspotd.coverage"), now: Self.wallClock)
        receipts = ReceiptIssuer(store: store, key: key, topics: topics, encoding: encoding)
    }

    /// Runs until `shutDown()`, or a graceful shutdown of its service group, has drained what it
    /// could; or until cancelled.
    public func run() async {
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await runTasks()
            } onCancel: {
                cancelTasks()
            }
        } onGracefulShutdown: { [self] in
            Task { await shutDown() }
        }
    }

    private func runTasks() async {
        let coverage = self.coverage
        let statistics = self.statistics
        let transport = self.transport
        let configuration = self.configuration
        let logger = self.logger
        var tasks: [Task<Void, Never>] = []
        // Frames wait in the inbox while the meter commits the ones before them; each batch is
        // then one transaction (group commit). At a trickle a batch is one frame.
        // The radio puts frames into the inbox from its own thread (no task hand-over per
        // frame); a frame it cannot put is counted in its statistics' framesDropped.
        let inbox = self.inbox
        let frameLoop = Task { [self] in
            for await _ in inbox.arrivals {
                while case let batch = inbox.take(atMost: Self.meterBatch), !batch.isEmpty {
                    state.withLock { $0.taken += batch.count }
                    await statistics.recordReceived(batch)
                    await meterAndRecord(batch)
                }
            }
        }
        tasks.append(frameLoop)
        tasks.append(Task {
            do {
                try await transport.run { data, timestamp in await coverage.receiveEntropy(data, timestamp: timestamp) }
            } catch {
                logger.error("MQTT: \(error)")
            }
        })
        if configuration.coverage.enabled {
            tasks.append(Task { await coverage.run(interval: configuration.coverage.interval) })
        }
        tasks.append(Task { [receipts] in
            while !Task.isCancelled {
                try? await Task.sleep(for: configuration.credits.receiptInterval)
                guard !Task.isCancelled else { return }
                _ = try? await receipts.issue(at: Self.wallClock())
            }
        })
        let reporter = StatsReporter(statistics: statistics, store: store, topics: topics, encoding: configuration.mqtt.json ? .json : .protobuf) { [self] in
            await statsMetadata()
        }
        tasks.append(Task { await reporter.run(every: configuration.statsInterval, now: Self.wallClock) })
        tasks.append(Task { [store] in
            while !Task.isCancelled {
                _ = try? await store.pruneNonces()
                try? await Task.sleep(for: .seconds(3600))
            }
        })
        tasks.append(Task { [meter] in
            // Refusal counts waiting for their report, said even when frames stop coming.
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(60))
                await meter.reportOverdueRefusals()
            }
        })
        tasks.append(Task { [self] in await superviseForSystemd() })
        let cancelledAlready = state.withLock { state in
            state.tasks = tasks
            state.frameLoop = frameLoop
            return state.tasksCancelled
        }
        if cancelledAlready || Task.isCancelled { tasks.forEach { $0.cancel() } }
        guard !stopping.withLock({ $0 }) else {
            for task in tasks { await task.value }
            return
        }

        notifier.notify("READY=1\nSTATUS=receiving", patience: .seconds(2))
        await writeStatus(running: true, radioAnswering: true, outboxDepth: await store.outboxDepth(), interval: notifier.watchdogInterval ?? .seconds(10))
        logger.notice("hotspotd running", metadata: [
            "GATEWAY_ID": "\(identity.gatewayID)", "ADDRESS": "\(identity.address)", "BOARD": "\(configuration.gateway.board)",
            "REGION": "\(configuration.gateway.region.name.rawValue)",
        ])
        for task in tasks { await task.value }
    }

    /// Meters a batch in one transaction; if the store fails, each frame alone, so that one bad
    /// frame costs itself and not the whole batch.
    private func meterAndRecord(_ batch: [RadioFrame]) async {
        do {
            let outcomes = try await meter.meter(batch: batch)
            // Only a forwarded uplink proves the store writes again: a refusal writes nothing.
            if outcomes.contains(where: {
                switch $0 {
                case .forwarded, .forwardedUnpaired, .forwardedJoin: true
                default: false
                }
            }) {
                storeAccepted()
            }
            for (frame, outcome) in zip(batch, outcomes) {
                record(outcome)
                if outcome == .beacon { _ = try? await coverage.consider(frame) }
            }
        } catch where batch.count > 1 {
            if state.withLock({ $0.storeFailure == nil }) {
                logger.warning("storing a batch of \(batch.count) frames failed, storing them one by one: \(error)")
            }
            for frame in batch { await meterAndRecord([frame]) }
        } catch {
            storeRefused(error, frames: batch.count)
        }
    }

    /// A frame the store could not take is neither debited nor forwarded: the transaction that
    /// would have done both is rolled back. The first refusal is logged at once; after it, one
    /// line a minute counts them, so that a full disk does not also flood the journal.
    private func storeRefused(_ error: StoreError, frames: Int) {
        let first = state.withLock { state -> Bool in
            state.framesNotStored += frames
            let first = state.storeFailure == nil
            state.storeFailure = error.message
            if first {
                state.lastStoreReport = monotonicNanoseconds()
            } else {
                state.notStoredSinceReport += frames
            }
            return first
        }
        if first {
            logger.error("the store refuses writes: \(error.message); uplinks are neither debited nor forwarded until it takes them again", metadata: [
                "data_dir": "\(configuration.gateway.dataDirectory)",
            ])
        }
    }

    private func storeAccepted() {
        let recovered = state.withLock { state -> Int? in
            guard state.storeFailure != nil else { return nil }
            state.storeFailure = nil
            state.notStoredSinceReport = 0
            return state.framesNotStored
        }
        if let recovered {
            logger.notice("the store takes writes again; \(recovered) frames could not be stored since the start")
        }
    }

    /// The minute's count of frames the store refused, while it refuses them.
    private func reportStoreRefusals() {
        let report = state.withLock { state -> (Int, String)? in
            // Read under the lock: the meter may have set lastStoreReport a moment ago.
            let now = monotonicNanoseconds()
            guard let failure = state.storeFailure, state.notStoredSinceReport > 0, now >= state.lastStoreReport + 60_000_000_000 else { return nil }
            defer {
                state.notStoredSinceReport = 0
                state.lastStoreReport = now
            }
            return (state.notStoredSinceReport, failure)
        }
        if let (count, failure) = report {
            logger.error("\(count) more frames not stored: \(failure)")
        }
    }

    /// What the agent has done so far: for `hotspotd status`'s file, benchmarks and tests.
    public struct Progress: Sendable, Equatable {
        /// Frames the meter has seen, and of them uplinks forwarded and refused.
        public var framesMetered: Int
        public var uplinksForwarded: Int
        public var uplinksRefused: Int
        /// Messages waiting in the outbox, and acknowledged by the broker since the start.
        public var outboxDepth: Int
        public var acknowledged: Int
        public var brokerConnected: Bool
    }

    /// Frames the meter has seen so far (cheap: no store access).
    public var framesMetered: Int {
        state.withLock { $0.received }
    }

    /// Frames the meter has taken from the radio so far, stored or not.
    public var framesTaken: Int {
        state.withLock { $0.taken }
    }

    public func progress() async -> Progress {
        let depth = await store.outboxDepth()
        let acknowledged = await transport.publisher.counters.acknowledged
        let counts = state.withLock { ($0.received, $0.forwarded, $0.refused) }
        return Progress(
            framesMetered: counts.0, uplinksForwarded: counts.1, uplinksRefused: counts.2,
            outboxDepth: depth, acknowledged: acknowledged, brokerConnected: transport.client.isConnected
        )
    }

    private func record(_ outcome: MeterOutcome) {
        state.withLock { state in
            state.received += 1
            switch outcome {
            case .forwarded, .forwardedUnpaired, .forwardedJoin:
                state.forwarded += 1
                state.lastUplinkNanoseconds = Self.wallClock()
            case .refused:
                state.refused += 1
            default:
                break
            }
        }
    }

    private func statsMetadata() async -> [String: String] {
        let counts = await meter.counts
        return [
            "version": hotspotdVersion, "board": configuration.gateway.board, "region": configuration.gateway.region.name.rawValue,
            "refused_no_credit": String(counts["refused_no_credit"] ?? 0),
            // Datagrams and rxpk a packet forwarder sent that could not be read, since the start.
            "rx_malformed": String(await radio.statistics().malformed),
        ]
    }

    /// The radio is checked at least as often as systemd expects a ping, so that a wedged radio
    /// stops the pings within a few watchdog periods.
    /// The most frames metered in one transaction.
    static let meterBatch = 256

    static func healthCheckInterval(watchdog: Duration?) -> Duration {
        min(.seconds(5), watchdog ?? .seconds(5))
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(seconds, 0)) * 1_000_000_000 + UInt64(max(attoseconds, 0) / 1_000_000_000)
    }

    /// Pings systemd's watchdog only while the radio and the outbox make progress, and keeps
    /// STATUS= current.
    private func superviseForSystemd() async {
        let interval = notifier.watchdogInterval ?? .seconds(10)
        let healthInterval = Self.healthCheckInterval(watchdog: notifier.watchdogInterval)
        // The first report comes after a second, once the broker had time to answer.
        var wait = min(interval, .seconds(1))
        while !Task.isCancelled {
            try? await Task.sleep(for: wait)
            wait = interval
            guard !Task.isCancelled else { return }
            let radioStats = await radio.statistics()
            let depth = await store.outboxDepth()
            let acknowledged = await transport.publisher.counters.acknowledged
            let now = monotonicNanoseconds()
            let connected = transport.client.isConnected
            let (received, forwarded, refused, outboxMoving) = state.withLock { state -> (Int, Int, Int, Bool) in
                // Disconnected from the broker is not stuck: the outbox waits on disk, and the
                // five minutes start again when the connection is back.
                if acknowledged != state.lastAcknowledged || depth == 0 || !connected {
                    state.lastAcknowledged = acknowledged
                    state.lastOutboxProgress = now
                }
                let moving = now - state.lastOutboxProgress < 300_000_000_000
                return (state.received, state.forwarded, state.refused, moving)
            }
            let newlyDropped = state.withLock { state -> Int in
                defer { state.lastDropped = radioStats.framesDropped }
                return radioStats.framesDropped - state.lastDropped
            }
            if newlyDropped > 0 {
                logger.warning("frames dropped: the meter fell \(FrameInbox.capacity) frames behind the radio", metadata: ["dropped": "\(newlyDropped)"])
            }
            // Three missed health checks in a row: the driver could not revive the chip.
            let radioAlive = now - radioStats.lastProgressNanoseconds < Self.nanoseconds(healthInterval * 3)
            reportStoreRefusals()
            let (storeFailure, notStored) = state.withLock { ($0.storeFailure, $0.framesNotStored) }
            let counts = "received \(received), forwarded \(forwarded), refused \(refused), outbox \(depth)"
            if let storeFailure {
                notifier.notify("STATUS=the store refuses writes (\(storeFailure)): \(notStored) frames not stored; \(counts)")
            } else {
                notifier.notify("STATUS=\(counts)")
            }
            await writeStatus(running: true, radioAnswering: radioAlive, outboxDepth: depth, interval: interval)
            if radioAlive && outboxMoving {
                notifier.notify("WATCHDOG=1")
            } else {
                logger.warning("not pinging the watchdog", metadata: ["radio_alive": "\(radioAlive)", "outbox_moving": "\(outboxMoving)"])
            }
        }
    }

    /// The packet forwarders' datagrams refused, by reason; nil without semtech_udp.
    private func forwarderRefusals() -> [String: Int]? {
        guard let counters = (radio as? SemtechUDPBackend)?.counters else { return nil }
        let all = [
            "not_listed": counters.forwardersNotListed, "too_many_forwarders": counters.forwardersRefused,
            "tx_ack_unmatched": counters.unmatchedTxAcks,
        ]
        return all.filter { $0.value > 0 }
    }

    /// Writes `status.json` for `hotspotd status`; a failure is logged, never fatal.
    private func writeStatus(running: Bool, radioAnswering: Bool, outboxDepth: Int, interval: Duration) async {
        let lastBeacon = await coverage.lastBeaconAt, lastWitness = await coverage.lastWitnessAt
        let snapshot = state.withLock { $0 }
        let (seconds, attoseconds) = interval.components
        let status = AgentStatus(
            pid: getpid(), version: hotspotdVersion, gatewayID: "\(identity.gatewayID)", board: configuration.gateway.board,
            region: configuration.gateway.region.name.rawValue, broker: "\(configuration.mqtt.tls ? "mqtts" : "mqtt")://\(configuration.mqtt.host):\(configuration.mqtt.port)",
            startedAt: snapshot.startedAt, updatedAt: Self.wallClock() / 1_000_000_000,
            updateIntervalSeconds: Double(seconds) + Double(attoseconds) / 1e18,
            running: running, radioAnswering: radioAnswering, brokerConnected: transport.client.isConnected,
            framesReceived: snapshot.received, uplinksForwarded: snapshot.forwarded, uplinksRefused: snapshot.refused,
            outboxDepth: outboxDepth, storeError: snapshot.storeFailure, framesNotStored: snapshot.framesNotStored,
            framesMalformed: await radio.statistics().malformed,
            forwarderRefusals: forwarderRefusals(),
            lastUplinkAt: snapshot.lastUplinkNanoseconds > 0 ? snapshot.lastUplinkNanoseconds / 1_000_000_000 : nil,
            lastBeaconAt: lastBeacon.map { $0 / 1_000_000_000 }, lastWitnessAt: lastWitness.map { $0 / 1_000_000_000 }
        )
        // Under the lock: once the stopped status is written, a late "running" must not win.
        // A failure is logged when it first happens or changes, not on every period.
        let (failure, recovered) = state.withLock { state -> (String?, Bool) in
            guard !state.finalStatusWritten else { return (nil, false) }
            if !running { state.finalStatusWritten = true }
            do {
                try status.write(dataDirectory: configuration.gateway.dataDirectory)
                defer { state.statusFileFailure = nil }
                return (nil, state.statusFileFailure != nil)
            } catch {
                let message = "\(error)"
                defer { state.statusFileFailure = message }
                return (state.statusFileFailure == message ? nil : message, false)
            }
        }
        if let failure { logger.warning("cannot write the status file: \(failure)") }
        if recovered { logger.notice("the status file is written again") }
    }

    /// Stops receiving, flushes the outbox for up to the shutdown timeout, puts the radio to
    /// sleep, publishes OFFLINE and ends `run()`.
    public func shutDown() async {
        guard stopping.withLock({ stopping in
            defer { stopping = true }
            return !stopping
        }) else { return }
        notifier.notify("STOPPING=1", patience: .seconds(2))
        logger.notice("stopping")
        await radio.stop()
        // The frame in hand, and any the radio handed over before it stopped, are stored first.
        await state.withLock({ $0.frameLoop })?.value
        let deadline = monotonicNanoseconds() + Self.nanoseconds(configuration.gateway.shutdownTimeout)
        while transport.client.isConnected, await store.outboxDepth() > 0, monotonicNanoseconds() < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        transport.stop()
        let waiting = await store.outboxDepth()
        await writeStatus(running: false, radioAnswering: false, outboxDepth: waiting, interval: .seconds(10))
        cancelTasks()
        logger.notice(waiting == 0 ? "stopped" : "stopped; \(waiting) messages wait in the outbox for the next start")
    }

    /// Ends `run()`: cancels its tasks, and those it starts later if it has not started them yet.
    private func cancelTasks() {
        let tasks = state.withLock { state in
            state.tasksCancelled = true
            return state.tasks
        }
        tasks.forEach { $0.cancel() }
    }
}

public let hotspotdVersion = "0.1.0"

/// Frames between the radio and the meter: the radio's side puts them in one by one, the
/// meter's side takes what has gathered. `arrivals` signals (coalesced) that there is more.
final class FrameInbox: FrameSink {
    private let frames = Mutex<[RadioFrame]>([])
    let arrivals: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    init() {
        (arrivals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// How many frames may wait: as many as the radio's own buffer holds.
    static let capacity = 1024

    /// Adds a frame; false when the inbox is full and the frame is dropped (the meter is that
    /// far behind the radio).
    func put(_ frame: RadioFrame) -> Bool {
        let added = frames.withLock { frames in
            guard frames.count < Self.capacity else { return false }
            frames.append(frame)
            return true
        }
        signal.yield()
        return added
    }

    func take(atMost limit: Int) -> [RadioFrame] {
        frames.withLock { frames in
            guard frames.count > limit else {
                defer { frames.removeAll(keepingCapacity: true) }
                return frames
            }
            defer { frames.removeFirst(limit) }
            return Array(frames.prefix(limit))
        }
    }

    /// No more frames will come; the meter's side ends once it has taken the rest.
    func finish() {
        signal.finish()
    }
}
