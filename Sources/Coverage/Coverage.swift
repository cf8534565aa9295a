import Clocks
import Credits
import Cryptography
import FoundationEssentials
import LoRaPHY
import Logging
import Messages
import Radio
import Store
import SwiftProtobuf
import Wire

/// What became of a beacon.
public enum BeaconOutcome: Sendable, Equatable {
    case sent(Beacon)
    /// Not sent; the reason is logged and the next window tries again.
    case notSent(TransmitOutcome)
    case noDataRate
}

/// What became of a received frame, seen by the witness side.
public enum WitnessOutcome: Sendable, Equatable {
    case witnessed
    case notABeacon
    /// A beacon's shape, but not sent where and how its data says a beacon of this region is.
    case implausible
    case ownBeacon
    /// Beyond the witness budget (`witnessBurst`, then `witnessesPerHour`).
    case overBudget
    /// The same beacon was witnessed already.
    case duplicate
}

/// Proof of coverage: sends a beacon once per interval, at a random moment of each
/// interval-aligned window, and turns beacons heard from other hotspots into witness reports.
/// Both reports are signed with the gateway's key and go through the outbox, so none is lost
/// while the broker is away.
public actor CoverageService {
    private let radio: any Radio
    private let store: Store
    private let identity: GatewayIdentity
    private let region: Region
    private let topics: Topics
    private let encoding: MessageEncoding
    private let powerDBm: Int
    private let logger: Logger
    private let now: @Sendable () -> Int64
    private var remoteEntropy: (data: [UInt8], timestamp: UInt64)?
    private var sentBeacons = RecentSet(capacity: 64)
    private var witnessedBeacons = RecentSet(capacity: 1024)
    /// Witness reports are signed claims: at most `witnessBurst` at once, then
    /// `witnessesPerHour`, whatever the air brings.
    private let witnessBudget: RefusalLimiter
    public static let witnessBurst = 16
    public static let witnessesPerHour = 16.0
    /// When the last beacon went out and the last witness report was made (wall clock, ns).
    public private(set) var lastBeaconAt: Int64?
    /// Beacons sent and witness reports made since the start.
    public private(set) var beaconsSent = 0
    public private(set) var witnessesReported = 0
    public private(set) var lastWitnessAt: Int64?
    /// Remote entropy older than this is not used.
    public let entropyLifetimeNanoseconds: Int64

    /// `powerDBm` is the beacon's transmit power (conducted); `now` the wall clock in ns.
    public init(
        radio: any Radio, store: Store, identity: GatewayIdentity, region: Region, topics: Topics,
        encoding: MessageEncoding = .protobuf, powerDBm: Int = 14, entropyLifetime: Duration = .seconds(3 * 3600),
        logger: Logger = Logger(label: "hotspotd.coverage"), now: @escaping @Sendable () -> Int64
    ) {
        self.radio = radio
        self.store = store
        self.identity = identity
        self.region = region
        self.topics = topics
        self.encoding = encoding
        self.powerDBm = powerDBm
        self.logger = logger
        self.now = now
        witnessBudget = RefusalLimiter(burst: Self.witnessBurst, perSecond: Self.witnessesPerHour / 3600)
        entropyLifetimeNanoseconds = Nanoseconds.of(entropyLifetime)
    }

    /// Remote entropy from a signed `network/entropy` command.
    public func receiveEntropy(_ data: [UInt8], timestamp: UInt64) {
        if let current = remoteEntropy, current.timestamp > timestamp { return }
        remoteEntropy = (data, timestamp)
    }

    /// The fresh remote entropy held, or none.
    func freshRemoteEntropy(at time: Int64) -> [UInt8] {
        guard let remote = remoteEntropy, time - Int64(clamping: remote.timestamp) <= entropyLifetimeNanoseconds else {
            return []
        }
        return remote.data
    }

    // MARK: Beacons

    /// The moment to beacon in the window that holds `time`: windows are aligned to multiples
    /// of the interval since the epoch, and the moment within one is random.
    public static func beaconTime(windowContaining time: Int64, interval: Int64) -> Int64 {
        let start = time - time % interval
        return start + Int64.random(in: 0..<interval)
    }

    /// Sends a beacon now and queues its signed report.
    public func beacon() async throws(StoreError) -> BeaconOutcome {
        let time = now()
        let local = secureRandomBytes(4)
        let remote = freshRemoteEntropy(at: time)
        guard let beacon = Beacon.make(remoteEntropy: remote, localEntropy: local, region: region) else {
            logger.error("no data rate of \(region.name.displayName) carries a \(Beacon.frameLength)-byte beacon")
            return .noDataRate
        }
        let request = TransmitRequest(
            payload: beacon.frame, frequencyHz: beacon.frequencyHz, dataRate: beacon.dataRate, codingRate: .cr4_5,
            powerDBm: powerDBm, invertedIQ: false, preambleLength: 8, crc: true, timing: .immediately
        )
        sentBeacons.insert(beacon.data)
        let tmst = await radio.currentTimestamp()
        let outcome = await radio.transmit(request)
        guard case .sent(let power) = outcome else {
            logger.warning(
                "beacon not sent: \(outcome); trying in the next window",
                metadata: ["FREQUENCY": "\(beacon.frequencyHz)"])
            return .notSent(outcome)
        }
        var report = Helium_PocLora_lora_beacon_report_req_v1()
        report.localEntropy = Data(local)
        report.remoteEntropy = Data(remote)
        report.data = Data(beacon.data)
        report.frequency = UInt64(beacon.frequencyHz)
        report.channel = Int32(beacon.channel)
        report.datarate = heliumDataRate(beacon.dataRate)
        report.txPower = Int32((power ?? powerDBm) * 10)
        report.timestamp = UInt64(max(time, 0))
        report.tmst = tmst
        if let signed = await sign(report, what: "beacon"), let payload = try? encoding.encode(signed) {
            try await store.enqueue(
                [
                    NewMessage(
                        kind: .beacon, topic: topics.beacon, messageID: "beacon-\(Hex.encode(beacon.data.prefix(8)))",
                        payload: payload)
                ], at: time)
        }
        lastBeaconAt = time
        beaconsSent += 1
        logger.info(
            "beacon sent",
            metadata: [
                "FREQUENCY": "\(beacon.frequencyHz)", "DATA_RATE": "\(beacon.dataRate)",
                "REMOTE_ENTROPY": "\(remote.isEmpty ? "none" : "held")",
            ])
        return .sent(beacon)
    }

    /// Beacons once in every window until cancelled.
    public func run(interval: Duration) async {
        let period =
            Nanoseconds.of(interval)
        guard period > 0 else { return }
        var window = now()
        while !Task.isCancelled {
            let target = Self.beaconTime(windowContaining: window, interval: period)
            let wait = target - now()
            // A moment already past (the agent started late in the window) waits for the next.
            if wait >= 0 {
                try? await Task.sleep(for: .nanoseconds(wait))
                guard !Task.isCancelled else { return }
                _ = try? await beacon()
            }
            window = window - window % period + period
        }
    }

    // MARK: Witnessing

    /// Turns a received beacon from another hotspot into a signed witness report: only a frame
    /// heard on the frequency and at the data rate its own data implies (as `Beacon.make`
    /// chooses them), once per beacon, within the witness budget.
    public func consider(_ frame: RadioFrame) async throws(StoreError) -> WitnessOutcome {
        guard frame.crc != .bad, let data = Beacon.data(ofFrame: frame.payload) else { return .notABeacon }
        guard let expected = Beacon.transmission(ofData: data, region: region),
            frame.frequencyHz == expected.frequencyHz, frame.dataRate == expected.dataRate
        else {
            logger.debug(
                "not witnessed: a beacon's shape on the wrong frequency or data rate",
                metadata: ["FREQUENCY": "\(frame.frequencyHz)", "DATA_RATE": "\(frame.dataRate)"])
            return .implausible
        }
        guard !sentBeacons.contains(data) else { return .ownBeacon }
        guard witnessedBeacons.insert(data) else { return .duplicate }
        let (admitted, unreported) = witnessBudget.admit()
        guard admitted else { return .overBudget }
        if unreported > 0 {
            logger.notice(
                "beacons not witnessed for the witness budget",
                metadata: [
                    "COUNT": "\(unreported)",
                    "BUDGET": "\(Self.witnessBurst), then \(Int(Self.witnessesPerHour)) an hour",
                ])
        }
        let time = frame.receivedAt ?? now()
        var report = Helium_PocLora_lora_witness_report_req_v1()
        report.data = Data(data)
        report.timestamp = UInt64(max(time, 0))
        report.tmst = frame.timestamp
        report.signal = Int32((frame.rssiDBm * 10).rounded())
        report.snr = Int32((frame.snrDB * 10).rounded())
        report.frequency = UInt64(frame.frequencyHz)
        report.datarate = heliumDataRate(frame.dataRate)
        if let signed = await sign(report, what: "witness"), let payload = try? encoding.encode(signed) {
            try await store.enqueue(
                [
                    NewMessage(
                        kind: .witness, topic: topics.witness, messageID: "witness-\(Hex.encode(data.prefix(8)))",
                        payload: payload)
                ], at: time)
        }
        lastWitnessAt = time
        witnessesReported += 1
        logger.info(
            "beacon witnessed",
            metadata: [
                "FREQUENCY": "\(frame.frequencyHz)", "RSSI": "\(oneDecimal(frame.rssiDBm))",
                "SNR": "\(oneDecimal(frame.snrDB))",
            ])
        return .witnessed
    }

    /// The report signed by the gateway's key; nil, said in the log, when the signer (a secure
    /// element that stopped answering) could not sign it.
    private func sign<Report: SignedReport>(_ report: Report, what: String) async -> Report? {
        do {
            return try await SignedReports.signed(report, by: identity.signer)
        } catch {
            logger.error("\(what) report not signed, so not published: \(error.message)")
            return nil
        }
    }
}

/// A signal figure as a person reads it: one decimal, -104.7, not -104.73333333333333.
func oneDecimal(_ value: Double) -> String {
    guard value.isFinite else { return "\(value)" }
    let tenths = Int64((value * 10).rounded())
    let sign = tenths < 0 ? "-" : ""
    return "\(sign)\(abs(tenths) / 10).\(abs(tenths) % 10)"
}
