import FoundationEssentials
import Frames
import LoRaPHY
import Messages
import SwiftProtobuf

/// Counts traffic between two `event/stats` reports: frames received and sent, per frequency,
/// per modulation and per transmit status, as ChirpStack's `gw.GatewayStats` carries them.
public actor TrafficStatistics {
    struct Modulation: Hashable {
        var dataRate: LoRaDataRate
        var codingRate: CodingRate?
    }

    private var received = 0
    private var receivedOK = 0
    private var transmitRequests = 0
    private var transmitted = 0
    private var receivedPerFrequency: [UInt32: UInt32] = [:]
    private var transmittedPerFrequency: [UInt32: UInt32] = [:]
    private var receivedPerModulation: [Modulation: UInt32] = [:]
    private var transmittedPerModulation: [Modulation: UInt32] = [:]
    private var transmitStatuses: [String: UInt32] = [:]

    public init() {}

    public func recordReceived(_ frames: [RadioFrame]) {
        for frame in frames { recordReceived(frame) }
    }

    public func recordReceived(_ frame: RadioFrame) {
        received += 1
        if frame.crc != .bad { receivedOK += 1 }
        receivedPerFrequency[frame.frequencyHz, default: 0] += 1
        receivedPerModulation[Modulation(dataRate: frame.dataRate, codingRate: frame.codingRate), default: 0] += 1
    }

    /// A downlink item refused before it reached the radio (a modulation it cannot send, Class B).
    public func recordRefusal(_ status: Gw_TxAckStatus) {
        transmitRequests += 1
        transmitStatuses[Self.name(of: status), default: 0] += 1
    }

    public func recordTransmission(_ request: TransmitRequest, outcome: TransmitOutcome) {
        transmitRequests += 1
        let status = DownlinkMessages.status(for: outcome)
        transmitStatuses[Self.name(of: status), default: 0] += 1
        guard outcome.isSent else { return }
        transmitted += 1
        transmittedPerFrequency[request.frequencyHz, default: 0] += 1
        transmittedPerModulation[Modulation(dataRate: request.dataRate, codingRate: request.codingRate), default: 0] += 1
    }

    /// The report for the period since the last one, and a fresh period.
    public func report(gatewayID: String, time: Int64, metadata: [String: String]) -> Gw_GatewayStats {
        var stats = Gw_GatewayStats()
        stats.gatewayID = gatewayID
        stats.time = Google_Protobuf_Timestamp(seconds: time / 1_000_000_000, nanos: Int32(time % 1_000_000_000))
        stats.rxPacketsReceived = UInt32(clamping: received)
        stats.rxPacketsReceivedOk = UInt32(clamping: receivedOK)
        stats.txPacketsReceived = UInt32(clamping: transmitRequests)
        stats.txPacketsEmitted = UInt32(clamping: transmitted)
        stats.rxPacketsPerFrequency = receivedPerFrequency
        stats.txPacketsPerFrequency = transmittedPerFrequency
        stats.rxPacketsPerModulation = Self.counts(receivedPerModulation)
        stats.txPacketsPerModulation = Self.counts(transmittedPerModulation)
        stats.txPacketsPerStatus = transmitStatuses
        stats.metadata = metadata
        received = 0
        receivedOK = 0
        transmitRequests = 0
        transmitted = 0
        receivedPerFrequency = [:]
        transmittedPerFrequency = [:]
        receivedPerModulation = [:]
        transmittedPerModulation = [:]
        transmitStatuses = [:]
        return stats
    }

    /// The status's name in gw.proto, as ChirpStack keys `tx_packets_per_status`.
    static func name(of status: Gw_TxAckStatus) -> String {
        switch status {
        case .ignored: "IGNORED"
        case .ok: "OK"
        case .tooLate: "TOO_LATE"
        case .tooEarly: "TOO_EARLY"
        case .collisionPacket: "COLLISION_PACKET"
        case .collisionBeacon: "COLLISION_BEACON"
        case .txFreq: "TX_FREQ"
        case .txPower: "TX_POWER"
        case .gpsUnlocked: "GPS_UNLOCKED"
        case .queueFull: "QUEUE_FULL"
        case .internalError: "INTERNAL_ERROR"
        case .dutyCycleOverflow: "DUTY_CYCLE_OVERFLOW"
        case .UNRECOGNIZED(let value): "UNRECOGNIZED_\(value)"
        }
    }

    static func counts(_ table: [Modulation: UInt32]) -> [Gw_PerModulationCount] {
        table.sorted { ($0.key.dataRate.spreadingFactor, $0.key.dataRate.bandwidth.rawValue) < ($1.key.dataRate.spreadingFactor, $1.key.dataRate.bandwidth.rawValue) }.map { entry in
            var lora = Gw_LoraModulationInfo()
            lora.bandwidth = UInt32(entry.key.dataRate.bandwidth.exactHz.rounded())
            lora.spreadingFactor = UInt32(entry.key.dataRate.spreadingFactor.rawValue)
            lora.codeRate = UplinkMessages.codeRate(entry.key.codingRate)
            var count = Gw_PerModulationCount()
            count.modulation.lora = lora
            count.count = entry.value
            return count
        }
    }
}
