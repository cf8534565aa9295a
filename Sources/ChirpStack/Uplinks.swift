import Clocks
import FoundationEssentials
import Frames
import LoRaPHY
import Messages
import SwiftProtobuf

/// Building ChirpStack's `gw.UplinkFrame` from a received frame.
public enum UplinkMessages {
    public static func uplinkFrame(_ frame: RadioFrame, gatewayID: String, uplinkID: UInt32, metadata: [String: String])
        -> Gw_UplinkFrame
    {
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
            rxInfo.gwTime = Google_Protobuf_Timestamp(unixNanoseconds: receivedAt)
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

extension Google_Protobuf_Timestamp {
    /// A wall-clock time in nanoseconds since the Unix epoch.
    public init(unixNanoseconds time: Int64) {
        self.init(seconds: Nanoseconds.seconds(time), nanos: Int32(Nanoseconds.fraction(time)))
    }
}
