import ChirpStack
import Clocks
import FoundationEssentials
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
    /// Items refused before they reach the radio are counted here (the radio counts the rest).
    private let statistics: TrafficStatistics?

    public init(
        radio: any Radio, store: Store, topics: Topics, encoding: MessageEncoding = .protobuf,
        logger: Logger = Logger(label: "hotspotd.downlink"),
        limiter: RefusalLimiter = RefusalLimiter(), statistics: TrafficStatistics? = nil,
        joinAccepted: (@Sendable (_ context: [UInt8]) async -> Void)? = nil
    ) {
        self.statistics = statistics
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
                switch DownlinkMessages.request(for: item) {
                case .failure(let refusal):
                    result.status = refusal.status
                    statistics?.recordRefusal(refusal.status)
                    ack.items.append(result)
                    continue
                case .success(let request):
                    outcome = await radio.transmit(request)
                }
                result.status = DownlinkMessages.status(for: outcome)
                done = outcome.isSent
                // MType 001: a join-accept.
                if done, item.phyPayload.first.map({ $0 >> 5 == 1 }) == true, let joinAccepted {
                    await joinAccepted(Array(item.txInfo.context))
                }
                logger.info(
                    "downlink \(done ? "sent" : "not sent")",
                    metadata: [
                        "DOWNLINK_ID": "\(frame.downlinkID)", "FREQUENCY": "\(item.txInfo.frequency)",
                        "STATUS": "\(result.status)",
                    ])
            }
            ack.items.append(result)
        }
        if let bytes = try? encoding.encode(ack) {
            try await store.enqueue(
                [NewMessage(kind: .ack, topic: topics.ack, messageID: "ack-\(frame.downlinkID)", payload: bytes)],
                at: now)
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
        if unreported > 0 {
            rejection.detail += " (and \(unreported) more refusals not reported, to keep a flood out of the outbox)"
        }
        rejection.topic = topics.down
        rejection.time = UInt64(max(now, 0))
        if let bytes = try? encoding.encode(rejection) {
            try await store.enqueue(
                [
                    NewMessage(
                        kind: .rejected, topic: topics.rejected, messageID: "rejected-down-\(now)", payload: bytes)
                ], at: now)
        }
        logger.notice("downlink refused: \(rejection.detail)")
    }
}
