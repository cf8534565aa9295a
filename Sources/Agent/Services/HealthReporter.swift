import Logging
import ServiceLifecycle

/// A look at the agent's health, taken once a period.
public struct HealthSample: Sendable, Equatable {
    /// Monotonic time of the radio's last sign of life (a frame, a TxDone, a health check).
    public var radioLastProgress: Duration
    public var framesDropped: Int
    /// Messages the broker acknowledged since the start, and what waits in the outbox.
    public var acknowledged: Int
    public var outboxDepth: Int
    public var brokerConnected: Bool
    /// The broker in use (one of `mqtt.servers`), when the agent knows it.
    public var broker: String?
    public var pipeline: FramePipeline.Counters

    public init(
        radioLastProgress: Duration, framesDropped: Int, acknowledged: Int, outboxDepth: Int, brokerConnected: Bool,
        broker: String? = nil, pipeline: FramePipeline.Counters
    ) {
        self.broker = broker
        self.radioLastProgress = radioLastProgress
        self.framesDropped = framesDropped
        self.acknowledged = acknowledged
        self.outboxDepth = outboxDepth
        self.brokerConnected = brokerConnected
        self.pipeline = pipeline
    }
}

/// Whether the agent deserves its watchdog ping: the radio answers (three missed health checks
/// in a row mean the driver could not revive it) and the outbox moves (acknowledgements within
/// five minutes while connected with something to send). Disconnected from the broker is not
/// stuck: the outbox waits on disk, and the five minutes start again once connected.
public struct WatchdogPolicy: Sendable {
    public static let outboxPatience: Duration = .seconds(300)

    public let radioPatience: Duration
    private var lastAcknowledged = 0
    private var lastOutboxProgress: Duration
    private var lastDropped = 0

    public init(healthCheckInterval: Duration, startedAt: Duration) {
        radioPatience = healthCheckInterval * 3
        lastOutboxProgress = startedAt
    }

    public struct Verdict: Sendable, Equatable {
        public var radioAlive: Bool
        public var outboxMoving: Bool
        /// Frames the radio dropped since the last verdict (the meter fell behind).
        public var newlyDropped: Int
        public var ping: Bool { radioAlive && outboxMoving }
    }

    public mutating func assess(_ sample: HealthSample, at now: Duration) -> Verdict {
        if sample.acknowledged != lastAcknowledged || sample.outboxDepth == 0 || !sample.brokerConnected {
            lastAcknowledged = sample.acknowledged
            lastOutboxProgress = now
        }
        defer { lastDropped = sample.framesDropped }
        return Verdict(
            radioAlive: now - sample.radioLastProgress < radioPatience,
            outboxMoving: now - lastOutboxProgress < Self.outboxPatience,
            newlyDropped: sample.framesDropped - lastDropped)
    }
}

/// The watchdog and status reporter: every period it samples the agent, keeps systemd's
/// STATUS= current, pings the watchdog only while the radio and the outbox make progress, and
/// writes `status.json`; at shutdown it writes the stopped status last.
public struct HealthReporter: Service {
    public let interval: Duration
    private let healthCheckInterval: Duration
    private let clock: any AgentClock
    private let sample: @Sendable () async -> HealthSample
    private let notify: @Sendable (String) -> Void
    private let writeStatus: @Sendable (_ sample: HealthSample, _ running: Bool, _ radioAnswering: Bool) async -> Void
    private let logger: Logger

    public init(
        interval: Duration, healthCheckInterval: Duration, clock: any AgentClock, logger: Logger,
        sample: @escaping @Sendable () async -> HealthSample, notify: @escaping @Sendable (String) -> Void,
        writeStatus: @escaping @Sendable (HealthSample, Bool, Bool) async -> Void
    ) {
        self.interval = interval
        self.healthCheckInterval = healthCheckInterval
        self.clock = clock
        self.logger = logger
        self.sample = sample
        self.notify = notify
        self.writeStatus = writeStatus
    }

    public func run() async {
        var policy = WatchdogPolicy(healthCheckInterval: healthCheckInterval, startedAt: clock.monotonic())
        await writeStatus(await sample(), true, true)
        // The first report comes after a second, once the broker had time to answer.
        var wait = min(interval, .seconds(1))
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            let pause = wait
            guard (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: pause) })) != nil else { break }
            wait = interval
            await report(&policy)
        }
        guard !Task.isCancelled else { return }
        await writeStatus(await sample(), false, false)
    }

    func report(_ policy: inout WatchdogPolicy) async {
        let sample = await sample()
        let verdict = policy.assess(sample, at: clock.monotonic())
        if verdict.newlyDropped > 0 {
            logger.warning(
                "frames dropped: the meter fell \(FrameInbox.capacity) frames behind the radio",
                metadata: ["dropped": "\(verdict.newlyDropped)"])
        }
        let pipeline = sample.pipeline
        let counts =
            """
            received \(pipeline.metered), forwarded \(pipeline.forwarded), refused \(pipeline.refused), outbox \
            \(sample.outboxDepth)
            """
        if let failure = pipeline.storeFailure {
            notify("STATUS=the store refuses writes (\(failure)): \(pipeline.notStored) frames not stored; \(counts)")
        } else {
            notify("STATUS=\(counts)")
        }
        await writeStatus(sample, true, verdict.radioAlive)
        if verdict.ping {
            notify("WATCHDOG=1")
        } else {
            logger.warning(
                "not pinging the watchdog",
                metadata: ["radio_alive": "\(verdict.radioAlive)", "outbox_moving": "\(verdict.outboxMoving)"])
        }
    }
}
