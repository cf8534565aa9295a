import Cryptography
import Foundation
import HAL
import Logging
import LoRaPHY
import LoRaWAN
import Messages
import Radio
import Store
import SwiftProtobuf

/// What became of a received frame.
public enum MeterOutcome: Sendable, Equatable {
    /// Charged and put into the outbox.
    case forwarded(seq: Int64, credits: Int64, balance: Int64, owner: String)
    /// From an unpaired device, forwarded without charge (`forward_unpaired = true`).
    case forwardedUnpaired
    /// A 52-byte proprietary frame: a proof-of-coverage beacon, for the coverage service.
    case beacon
    /// The same frame was charged a moment ago (heard on two channels or by two forwarders).
    case duplicate
    /// Not forwarded and not worth a rejection message: noise, a CRC error, a downlink heard
    /// on air, an unpaired device.
    case dropped(DropReason)
    /// Refused, and reported on `event/rejected`.
    case refused(UplinkRefusal)
}

public enum DropReason: String, Sendable, Equatable {
    case crcError = "crc_error"
    case undecodable
    case downlink
    case unpaired
    case unsupported
}

/// Why an uplink from a paired device was refused; the raw value is the published reason.
public enum UplinkRefusal: String, Sendable, Equatable {
    case badMIC = "bad_mic"
    case oldFCnt = "old_fcnt"
    case noCredit = "no_credit"
    case replayedJoin = "replayed_join"
}

/// How the meter treats what it does not charge.
public struct MeterSettings: Sendable {
    /// Forward uplinks of unpaired devices, without charge.
    public var forwardUnpaired: Bool
    /// Charge join requests like uplinks.
    public var chargeJoins: Bool
    /// How long the same frame counts as a duplicate.
    public var duplicateWindowNanoseconds: Int64

    public init(forwardUnpaired: Bool = false, chargeJoins: Bool = true, duplicateWindowNanoseconds: Int64 = 5_000_000_000) {
        self.forwardUnpaired = forwardUnpaired
        self.chargeJoins = chargeJoins
        self.duplicateWindowNanoseconds = duplicateWindowNanoseconds
    }
}

/// Meters every uplink against its owner's data credits.
///
/// A data uplink is matched to a pairing by DevAddr (a join request by DevEUI). With the
/// pairing's NwkSKey, the 32-bit frame counter is rebuilt from the 16 bits on air, must move
/// forward (at most 16384 ahead, LoRaWAN's MAX_FCNT_GAP), and the MIC must check: a forged or
/// replayed frame is refused and not charged. The price is Helium's (`Pricing`). The debit, the
/// new frame counter and the forwarded `gw.UplinkFrame` (with `dc`, `balance`, `owner` and `seq`
/// in `rx_info.metadata`) are one store transaction.
public actor Meter {
    private let store: Store
    private let topics: Topics
    private let encoding: MessageEncoding
    private let settings: MeterSettings
    private let now: @Sendable () -> Int64
    private let logger: Logger
    private let arrivalClock: @Sendable () -> Int64
    private var recent: [[UInt8]: Int64] = [:]
    private var recentOrder: [([UInt8], Int64)] = []
    public private(set) var counts: [String: Int] = [:]

    /// LoRaWAN's MAX_FCNT_GAP.
    public static let maximumFrameCounterGap: UInt32 = 16_384

    /// `now` is the wall clock in nanoseconds since the Unix epoch.
    public init(
        store: Store, topics: Topics, encoding: MessageEncoding = .protobuf, settings: MeterSettings = MeterSettings(),
        logger: Logger = Logger(label: "hotspotd.meter"), now: @escaping @Sendable () -> Int64,
        arrivalClock: @escaping @Sendable () -> Int64 = { Int64(monotonicNanoseconds()) }
    ) {
        self.logger = logger
        self.arrivalClock = arrivalClock
        self.store = store
        self.topics = topics
        self.encoding = encoding
        self.settings = settings
        self.now = now
    }

    public func meter(_ frame: RadioFrame) async throws(StoreError) -> MeterOutcome {
        let outcome = try await classifyAndCharge(frame)
        counts[Self.countKey(outcome), default: 0] += 1
        return outcome
    }

    static func countKey(_ outcome: MeterOutcome) -> String {
        switch outcome {
        case .forwarded: "forwarded"
        case .forwardedUnpaired: "forwarded_unpaired"
        case .beacon: "beacon"
        case .duplicate: "duplicate"
        case .dropped(let reason): "dropped_" + reason.rawValue
        case .refused(let reason): "refused_" + reason.rawValue
        }
    }

    private func classifyAndCharge(_ frame: RadioFrame) async throws(StoreError) -> MeterOutcome {
        guard frame.crc != .bad else { return .dropped(.crcError) }
        guard let phy = try? PHYPayload.decode(frame.payload) else { return .dropped(.undecodable) }
        let time = frame.receivedAt ?? now()
        switch phy.message {
        case .proprietary:
            return frame.payload.count == 52 && frame.payload[0] == 0xE0 ? .beacon : .dropped(.unsupported)
        case .joinAccept, .rejoinRequest:
            return .dropped(phy.mType.isUplink ? .unsupported : .downlink)
        case .joinRequest(let request):
            guard let pairing = try await store.pairing(devEUI: request.devEUI.rawValue) else {
                return try await unpaired(frame, at: time)
            }
            if isDuplicate(frame.payload) { return .duplicate }
            let credits = settings.chargeJoins ? Pricing.credits(forPayloadOf: frame.payload.count) : 0
            return try await charge(frame, pairing: pairing, credits: credits, fCnt: nil, devEUI: request.devEUI.rawValue, devNonce: request.devNonce, at: time)
        case .data(let data):
            guard phy.mType.isUplink else { return .dropped(.downlink) }
            guard let pairing = try await store.pairing(devAddr: data.devAddr.rawValue) else {
                return try await unpaired(frame, at: time)
            }
            if isDuplicate(frame.payload) { return .duplicate }
            var fCnt: UInt32?
            if let key = pairing.nwkSKey {
                let full = LoRaWANCrypto.fullFrameCounter(received: data.fCnt, last: pairing.lastFCnt)
                if let last = pairing.lastFCnt, full <= last || full - last > Self.maximumFrameCounterGap {
                    return try await refuse(.oldFCnt, frame: frame, pairing: pairing, detail: "FCnt \(data.fCnt) is not after \(last)", at: time)
                }
                guard (try? phy.hasValidMIC(nwkSKey: key, fCnt: full)) == true else {
                    return try await refuse(.badMIC, frame: frame, pairing: pairing, detail: "the MIC does not check with the paired NwkSKey", at: time)
                }
                fCnt = full
            }
            return try await charge(frame, pairing: pairing, credits: Pricing.credits(forPayloadOf: frame.payload.count), fCnt: fCnt, devEUI: pairing.devEUI, at: time)
        }
    }

    private func charge(_ frame: RadioFrame, pairing: Pairing, credits: Int64, fCnt: UInt32?, devEUI: UInt64?, devNonce: UInt16? = nil, at time: Int64) async throws(StoreError) -> MeterOutcome {
        let charge = Charge(owner: pairing.owner, devAddr: pairing.devAddr, devEUI: devEUI, phyPayload: frame.payload, credits: credits, fCnt: fCnt, devNonce: devNonce, receivedAt: time)
        let topics = self.topics
        let encoding = self.encoding
        let result = try await store.charge(charge) { seq, balance in
            let metadata = ["dc": String(credits), "balance": String(balance), "owner": pairing.owner, "seq": String(seq)]
            let uplink = UplinkMessages.uplinkFrame(frame, gatewayID: topics.gatewayID, uplinkID: UInt32(truncatingIfNeeded: seq), metadata: metadata)
            return [NewMessage(kind: .uplink, topic: topics.up, messageID: "up-\(seq)", payload: try encoding.encode(uplink))]
        }
        switch result {
        case .charged(let seq, let balance):
            logger.debug("uplink charged", metadata: [
                "DEV_ADDR": "\(DevAddr(pairing.devAddr))", "OWNER": "\(pairing.owner)", "DC": "\(credits)", "BALANCE": "\(balance)", "SEQ": "\(seq)",
            ])
            return .forwarded(seq: seq, credits: credits, balance: balance, owner: pairing.owner)
        case .insufficientCredit(let balance):
            return try await refuse(.noCredit, frame: frame, pairing: pairing, detail: "\(credits) DC needed, \(balance) DC left", at: time)
        case .staleFrameCounter:
            return try await refuse(.oldFCnt, frame: frame, pairing: pairing, detail: "FCnt \(fCnt.map(String.init) ?? "?") was overtaken by another frame", at: time)
        case .replayedJoin:
            return try await refuse(.replayedJoin, frame: frame, pairing: pairing, detail: "DevNonce \(devNonce.map(String.init) ?? "?") was used before", at: time)
        }
    }

    private func unpaired(_ frame: RadioFrame, at time: Int64) async throws(StoreError) -> MeterOutcome {
        guard settings.forwardUnpaired else { return .dropped(.unpaired) }
        if isDuplicate(frame.payload) { return .duplicate }
        let id = UInt32.random(in: 1...UInt32.max)
        let uplink = UplinkMessages.uplinkFrame(frame, gatewayID: topics.gatewayID, uplinkID: id, metadata: ["dc": "0"])
        guard let payload = try? encoding.encode(uplink) else { return .dropped(.undecodable) }
        try await store.enqueue([NewMessage(kind: .uplink, topic: topics.up, messageID: "up-unpaired-\(time)-\(id)", payload: payload)], at: time)
        return .forwardedUnpaired
    }

    private func refuse(_ reason: UplinkRefusal, frame: RadioFrame, pairing: Pairing, detail: String, at time: Int64) async throws(StoreError) -> MeterOutcome {
        // One line per refusal: rare and worth an owner's attention; forwarded uplinks log at debug.
        logger.notice("uplink refused: \(detail)", metadata: [
            "REASON": "\(reason.rawValue)", "DEV_ADDR": "\(DevAddr(pairing.devAddr))", "OWNER": "\(pairing.owner)",
        ])
        var rejection = Hotspotd_Rejection()
        rejection.reason = reason.rawValue
        rejection.detail = detail
        rejection.devAddr = DevAddr(pairing.devAddr).description
        if let devEUI = pairing.devEUI { rejection.devEui = EUI64(devEUI).description }
        rejection.owner = pairing.owner
        rejection.time = UInt64(max(time, 0))
        rejection.topic = topics.up
        if let payload = try? encoding.encode(rejection) {
            try await store.enqueue([NewMessage(kind: .rejected, topic: topics.rejected, messageID: "rejected-\(time)-\(reason.rawValue)-\(DevAddr(pairing.devAddr))", payload: payload)], at: time)
        }
        return .refused(reason)
    }

    /// Whether the same bytes were metered within the window, by this machine's monotonic clock
    /// (forwarders' clocks may disagree); remembers them otherwise.
    private func isDuplicate(_ payload: [UInt8]) -> Bool {
        let time = arrivalClock()
        let window = settings.duplicateWindowNanoseconds
        while let oldest = recentOrder.first, time - oldest.1 > window || recentOrder.count > 4096 {
            recentOrder.removeFirst()
            if recent[oldest.0] == oldest.1 { recent[oldest.0] = nil }
        }
        if let seen = recent[payload], time - seen <= window { return true }
        recent[payload] = time
        recentOrder.append((payload, time))
        return false
    }
}

/// Building ChirpStack's `gw.UplinkFrame` from a received frame.
public enum UplinkMessages {
    public static func uplinkFrame(_ frame: RadioFrame, gatewayID: String, uplinkID: UInt32, metadata: [String: String]) -> Gw_UplinkFrame {
        var lora = Gw_LoraModulationInfo()
        lora.bandwidth = UInt32(frame.dataRate.bandwidth.exactHz.rounded())
        lora.spreadingFactor = UInt32(frame.dataRate.spreadingFactor.rawValue)
        lora.codeRate = codeRate(frame.codingRate)
        lora.codeRateLegacy = frame.codingRate?.description ?? ""
        var txInfo = Gw_UplinkTxInfo()
        txInfo.frequency = frame.frequencyHz
        txInfo.modulation.lora = lora

        var rxInfo = Gw_UplinkRxInfo()
        rxInfo.gatewayID = gatewayID
        rxInfo.uplinkID = uplinkID
        if let receivedAt = frame.receivedAt {
            rxInfo.gwTime = Google_Protobuf_Timestamp(seconds: receivedAt / 1_000_000_000, nanos: Int32(receivedAt % 1_000_000_000))
        }
        rxInfo.rssi = Int32(frame.rssiDBm.rounded())
        rxInfo.snr = Float(frame.snrDB)
        rxInfo.channel = UInt32(frame.channel ?? 0)
        rxInfo.rfChain = UInt32(frame.rfChain ?? 0)
        rxInfo.context = Data(context(of: frame))
        rxInfo.crcStatus = frame.crc == .ok ? .crcOk : frame.crc == .bad ? .badCrc : .noCrc
        rxInfo.metadata = metadata

        var uplink = Gw_UplinkFrame()
        uplink.phyPayload = Data(frame.payload)
        uplink.txInfo = txInfo
        uplink.rxInfo = rxInfo
        return uplink
    }

    /// `rx_info.context`, returned untouched in a Class A downlink: the 4-byte timestamp
    /// (big-endian, as ChirpStack's forwarder writes it), then the forwarder's EUI when a
    /// packet forwarder heard the frame.
    public static func context(of frame: RadioFrame) -> [UInt8] {
        var bytes = (0..<4).map { UInt8(truncatingIfNeeded: frame.timestamp >> (24 - 8 * $0)) }
        if let gateway = frame.gatewayEUI { bytes += gateway.bytes }
        return bytes
    }

    public static func codeRate(_ rate: CodingRate?) -> Gw_CodeRate {
        switch rate {
        case .cr4_5: .cr45
        case .cr4_6: .cr46
        case .cr4_7: .cr47
        case .cr4_8: .cr48
        case nil: .crUndefined
        }
    }
}
