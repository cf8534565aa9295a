import Clocks
import Coverage
import Logging
import Radio
import SemtechUDP
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Writes `status.json` for `hotspotd status` from a health sample and what the agent knows
/// of itself. A failure is logged when it first happens or changes, never fatal; the file is
/// written outside any lock.
public final class StatusWriter: Sendable {
    /// What does not change while the agent runs.
    public struct Identity: Sendable {
        public var gatewayID: String
        public var board: String
        public var region: String
        public var broker: String
        public var dataDirectory: String
        /// Unix seconds.
        public var startedAt: Int64
    }

    private let identity: Identity
    private let radio: any Radio
    private let coverage: CoverageService
    private let clock: any AgentClock
    private let logger: Logger
    /// The last failure said in the log.
    private let failure = Mutex<String?>(nil)

    public init(identity: Identity, radio: any Radio, coverage: CoverageService, clock: any AgentClock, logger: Logger)
    {
        self.identity = identity
        self.radio = radio
        self.coverage = coverage
        self.clock = clock
        self.logger = logger
    }

    public func write(_ sample: HealthSample, running: Bool, radioAnswering: Bool, interval: Duration) async {
        let lastBeacon = await coverage.lastBeaconAt
        let lastWitness = await coverage.lastWitnessAt
        let pipeline = sample.pipeline
        let (seconds, attoseconds) = interval.components
        let status = AgentStatus(
            pid: getpid(), version: hotspotdVersion, gatewayID: identity.gatewayID, board: identity.board,
            region: identity.region,
            broker: sample.broker ?? identity.broker, startedAt: identity.startedAt,
            updatedAt: Nanoseconds.seconds(clock.wallClock()),
            updateIntervalSeconds: Double(seconds) + Double(attoseconds) / 1e18,
            running: running, radioAnswering: radioAnswering, brokerConnected: sample.brokerConnected,
            framesReceived: pipeline.metered, uplinksForwarded: pipeline.forwarded, uplinksRefused: pipeline.refused,
            outboxDepth: sample.outboxDepth, storeError: pipeline.storeFailure, framesNotStored: pipeline.notStored,
            framesMalformed: await radio.statistics().malformed,
            forwarderRefusals: forwarderRefusals(),
            uplinksFiltered: pipeline.filtered.isEmpty ? nil : pipeline.filtered,
            lastUplinkAt: pipeline.lastUplinkAt.map(Nanoseconds.seconds),
            lastBeaconAt: lastBeacon.map(Nanoseconds.seconds), lastWitnessAt: lastWitness.map(Nanoseconds.seconds)
        )
        var message: String?
        do {
            try status.write(dataDirectory: identity.dataDirectory)
        } catch {
            message = "\(error)"
        }
        let previous = failure.withLock { failure in
            defer { failure = message }
            return failure
        }
        if let message, message != previous { logger.warning("cannot write the status file: \(message)") }
        if message == nil, previous != nil { logger.notice("the status file is written again") }
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
}
