import Clocks
import FoundationEssentials
import Frames
import LoRaPHY
import Messages
import SwiftProtobuf

/// ChirpStack's `gw.DownlinkFrameItem` as a transmission, and a transmission's outcome as its
/// `gw.TxAckStatus`.
public enum DownlinkMessages {
    /// The transmission an item asks for, or the status that refuses it.
    public struct Refusal: Error, Sendable, Equatable {
        public var status: Gw_TxAckStatus
    }

    public static func request(for item: Gw_DownlinkFrameItem) -> Result<TransmitRequest, Refusal> {
        let info = item.txInfo
        guard case .lora(let lora)? = info.modulation.parameters,
            let spreadingFactor = SpreadingFactor(rawValue: Int(lora.spreadingFactor)),
            let bandwidth = LoRaBandwidth(hz: Int(lora.bandwidth))
        else {
            return .failure(Refusal(status: .internalError))
        }
        let codingRate: CodingRate =
            switch lora.codeRate {
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
            guard context.count >= 4, (0...16).contains(delay.delay.seconds),
                (0..<Int32(Nanoseconds.perSecond)).contains(delay.delay.nanos)
            else {
                return .failure(Refusal(status: .internalError))
            }
            let uplink = context.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let microseconds = Int64(delay.delay.seconds) * 1_000_000 + Int64(delay.delay.nanos) / 1000
            timing = .atTimestamp(uplink &+ UInt32(truncatingIfNeeded: microseconds))
        case .gpsEpoch?:
            // Class B needs GPS time, which these radios do not keep.
            return .failure(Refusal(status: .gpsUnlocked))
        }
        return .success(
            TransmitRequest(
                payload: Array(item.phyPayload), frequencyHz: info.frequency,
                dataRate: LoRaDataRate(spreadingFactor: spreadingFactor, bandwidth: bandwidth), codingRate: codingRate,
                powerDBm: Int(info.power), invertedIQ: lora.polarizationInversion,
                preambleLength: lora.preamble > 0 ? Int(lora.preamble) : 8,
                crc: !lora.noCrc && !lora.polarizationInversion,
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
