import Credits
import FoundationEssentials
import HAL
import LoRaPHY
import Logging
import Messages
import Radio
import Store
import SwiftProtobuf

/// Turns ChirpStack's `gw.DownlinkFrame` into transmissions and answers with a
/// `gw.DownlinkTxAck`: one item per requested item, tried in order (RX1, then RX2) until one is
/// sent; at most one OK; those after it IGNORED.
public struct DownlinkHandler: Sendable {
    public let radio: any Radio
    public let store: Store
    public let topics: Topics
    public let encoding: MessageEncoding
    /// Refusals of undecodable payloads are reported within its limits.
    public let limiter: RefusalLimiter
    private let logger: Logger
    /// Told of each join-accept sent, with the `tx_info.context` it came with (its join
    /// request's `rx_info.context`): the join was real, and answered through this hotspot.
    private let joinAccepted: (@Sendable (_ context: [UInt8]) async -> Void)?

    public init(
        radio: any Radio, store: Store, topics: Topics, encoding: MessageEncoding = .protobuf, logger: Logger = Logger(label: "hotspotd.downlink"),
        limiter: RefusalLimiter = RefusalLimiter(), joinAccepted: (@Sendable (_ context: [UInt8]) async -> Void)? = nil
    ) {
        self.limiter = limiter
        self.joinAccepted = joinAccepted
        self.radio = radio
        self.store = store
        self.topics = topics
        self.encoding = encoding
        self.logger = logger
    }

    /// The largest `command/down` payload decoded: a few items of at most 255 bytes each fit
    /// in well under this; anything larger is refused unread.
    public static let maximumSize = 16_384

    /// Handles one `command/down` payload; returns the acknowledgement put into the outbox, or
    /// nil when the payload could not be decoded (a rejection is queued instead).
    @discardableResult
    public func handle(_ payload: [UInt8], now: Int64) async throws(StoreError) -> Gw_DownlinkTxAck? {
        guard payload.count <= Self.maximumSize else {
            try await refuseOversized(size: payload.count, now: now)
            return nil
        }
        guard let frame = try? encoding.decode(Gw_DownlinkFrame.self, from: payload), !frame.items.isEmpty else {
            try await refuse("undecodable", "command/down payload is not a gw.DownlinkFrame with items", now: now)
            return nil
        }
        var ack = Gw_DownlinkTxAck()
        ack.gatewayID = topics.gatewayID
        ack.downlinkID = frame.downlinkID
        ack.downlinkIDLegacy = frame.downlinkIDLegacy
        var done = false
        for item in frame.items {
            var result = Gw_DownlinkTxAckItem()
            if done {
                result.status = .ignored
            } else {
                let outcome: TransmitOutcome
                switch Self.request(for: item) {
                case .failure(let refusal):
                    result.status = refusal.status
                    ack.items.append(result)
                    continue
                case .success(let request):
                    outcome = await radio.transmit(request)
                }
                result.status = Self.status(for: outcome)
                done = outcome.isSent
                // MType 001: a join-accept.
                if done, item.phyPayload.first.map({ $0 >> 5 == 1 }) == true, let joinAccepted {
                    await joinAccepted(Array(item.txInfo.context))
                }
                logger.info("downlink \(done ? "sent" : "not sent")", metadata: [
                    "DOWNLINK_ID": "\(frame.downlinkID)", "FREQUENCY": "\(item.txInfo.frequency)", "STATUS": "\(result.status)",
                ])
            }
            ack.items.append(result)
        }
        if let bytes = try? encoding.encode(ack) {
            try await store.enqueue([NewMessage(kind: .ack, topic: topics.ack, messageID: "ack-\(frame.downlinkID)", payload: bytes)], at: now)
        }
        return ack
    }

    /// Refuses a `command/down` message by its size alone.
    public func refuseOversized(size: Int, now: Int64) async throws(StoreError) {
        try await refuse("oversized", "command/down payload of \(size) bytes (\(Self.maximumSize) at most)", now: now)
    }

    /// Reports a refused `command/down` payload, within the limiter's budget.
    private func refuse(_ reason: String, _ detail: String, now: Int64) async throws(StoreError) {
        let (report, unreported) = limiter.admit()
        guard report else { return }
        var rejection = Hotspotd_Rejection()
        rejection.reason = reason
        rejection.detail = detail
        if unreported > 0 { rejection.detail += " (and \(unreported) more refusals not reported, to keep a flood out of the outbox)" }
        rejection.topic = topics.down
        rejection.time = UInt64(max(now, 0))
        if let bytes = try? encoding.encode(rejection) {
            try await store.enqueue([NewMessage(kind: .rejected, topic: topics.rejected, messageID: "rejected-down-\(now)", payload: bytes)], at: now)
        }
        logger.notice("downlink refused: \(rejection.detail)")
    }

    /// The transmission an item asks for, or the status that refuses it.
    public struct Refusal: Error, Sendable, Equatable {
        public var status: Gw_TxAckStatus
    }

    public static func request(for item: Gw_DownlinkFrameItem) -> Result<TransmitRequest, Refusal> {
        let info = item.txInfo
        guard case .lora(let lora)? = info.modulation.parameters,
              let spreadingFactor = SpreadingFactor(rawValue: Int(lora.spreadingFactor)),
              let bandwidth = LoRaBandwidth(hz: Int(lora.bandwidth)) else {
            return .failure(Refusal(status: .internalError))
        }
        let codingRate: CodingRate = switch lora.codeRate {
        case .cr46: .cr4_6
        case .cr47: .cr4_7
        case .cr48: .cr4_8
        default: CodingRate(lora.codeRateLegacy) ?? .cr4_5
        }
        let context = Array(info.context)
        var timing = TransmitTiming.immediately
        var gateway: EUI64?
        if context.count >= 12 { gateway = EUI64(bytes: context[4..<12]) }
        switch info.timing.parameters {
        case .immediately?, nil:
            timing = .immediately
        case .delay(let delay)?:
            // Class A windows are 1 to 16 s after the uplink; anything else is refused.
            guard context.count >= 4, (0...16).contains(delay.delay.seconds), (0..<1_000_000_000).contains(delay.delay.nanos) else {
                return .failure(Refusal(status: .internalError))
            }
            let uplink = context.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let microseconds = Int64(delay.delay.seconds) * 1_000_000 + Int64(delay.delay.nanos) / 1000
            timing = .atTimestamp(uplink &+ UInt32(truncatingIfNeeded: microseconds))
        case .gpsEpoch?:
            // Class B needs GPS time, which these radios do not keep.
            return .failure(Refusal(status: .gpsUnlocked))
        }
        return .success(TransmitRequest(
            payload: Array(item.phyPayload), frequencyHz: info.frequency,
            dataRate: LoRaDataRate(spreadingFactor: spreadingFactor, bandwidth: bandwidth), codingRate: codingRate,
            powerDBm: Int(info.power), invertedIQ: lora.polarizationInversion,
            preambleLength: lora.preamble > 0 ? Int(lora.preamble) : 8, crc: !lora.noCrc && !lora.polarizationInversion,
            timing: timing, gatewayEUI: gateway
        ))
    }

    public static func status(for outcome: TransmitOutcome) -> Gw_TxAckStatus {
        switch outcome {
        case .sent: .ok
        case .tooLate: .tooLate
        case .tooEarly: .tooEarly
        case .collisionPacket: .collisionPacket
        case .collisionBeacon: .collisionBeacon
        case .frequencyNotAllowed: .txFreq
        case .powerNotAllowed: .txPower
        case .dutyCycleExhausted: .dutyCycleOverflow
        case .gpsUnlocked: .gpsUnlocked
        case .queueFull: .queueFull
        case .failed: .internalError
        }
    }
}
