import FoundationEssentials
import Frames
import LoRaPHY
import Messages
import SwiftProtobuf
import Synchronization

/// Counts traffic between two `event/stats` reports: frames received and sent, per frequency,
/// per modulation and per transmit status, as ChirpStack's `gw.GatewayStats` carries them.
/// Counting takes a lock for a moment, never a hop to another task: the frame pipeline counts
/// every batch.
public final class TrafficStatistics: Sendable {
    struct Modulation: Hashable {
        var dataRate: LoRaDataRate
        var codingRate: CodingRate?
    }

    private struct Counts {
        var received = 0
        var receivedOK = 0
        var transmitRequests = 0
        var transmitted = 0
        var receivedPerFrequency: [UInt32: UInt32] = [:]
        var transmittedPerFrequency: [UInt32: UInt32] = [:]
        var receivedPerModulation: [Modulation: UInt32] = [:]
        var transmittedPerModulation: [Modulation: UInt32] = [:]
        var transmitStatuses: [String: UInt32] = [:]

        mutating func recordReceived(_ frame: RadioFrame) {
            received += 1
            if frame.crc != .bad { receivedOK += 1 }
            receivedPerFrequency[frame.frequencyHz, default: 0] += 1
            receivedPerModulation[Modulation(dataRate: frame.dataRate, codingRate: frame.codingRate), default: 0] += 1
        }
    }

    private let counts = Mutex(Counts())
    /// Transmit statuses since the start, by gw.proto's name (`OK`, `TOO_LATE` …).
    private let statusTotals = Mutex([String: Int]())

    /// Downlink items by their `tx_ack` status since the start.
    public var transmitStatusTotals: [String: Int] { statusTotals.withLock { $0 } }

    public init() {}

    public func recordReceived(_ frames: [RadioFrame]) {
        counts.withLock { counts in
            for frame in frames { counts.recordReceived(frame) }
        }
    }

    public func recordReceived(_ frame: RadioFrame) {
        counts.withLock { $0.recordReceived(frame) }
    }

    /// A downlink item refused before it reached the radio (a modulation it cannot send, Class B).
    public func recordRefusal(_ status: Gw_TxAckStatus) {
        counts.withLock { counts in
            counts.transmitRequests += 1
            counts.transmitStatuses[Self.name(of: status), default: 0] += 1
        }
        statusTotals.withLock { $0[Self.name(of: status), default: 0] += 1 }
    }

    public func recordTransmission(_ request: TransmitRequest, outcome: TransmitOutcome) {
        let status = Self.name(of: DownlinkMessages.status(for: outcome))
        statusTotals.withLock { $0[status, default: 0] += 1 }
        counts.withLock { counts in
            counts.transmitRequests += 1
            counts.transmitStatuses[status, default: 0] += 1
            guard outcome.isSent else { return }
            counts.transmitted += 1
            counts.transmittedPerFrequency[request.frequencyHz, default: 0] += 1
            let modulation = Modulation(dataRate: request.dataRate, codingRate: request.codingRate)
            counts.transmittedPerModulation[modulation, default: 0] += 1
        }
    }

    /// The report for the period since the last one, and a fresh period.
    public func report(gatewayID: String, time: Int64, metadata: [String: String]) -> Gw_GatewayStats {
        let period = counts.withLock { counts in
            defer { counts = Counts() }
            return counts
        }
        var stats = Gw_GatewayStats()
        stats.gatewayID = gatewayID
        stats.time = Google_Protobuf_Timestamp(unixNanoseconds: time)
        stats.rxPacketsReceived = UInt32(clamping: period.received)
        stats.rxPacketsReceivedOk = UInt32(clamping: period.receivedOK)
        stats.txPacketsReceived = UInt32(clamping: period.transmitRequests)
        stats.txPacketsEmitted = UInt32(clamping: period.transmitted)
        stats.rxPacketsPerFrequency = period.receivedPerFrequency
        stats.txPacketsPerFrequency = period.transmittedPerFrequency
        stats.rxPacketsPerModulation = Self.counts(period.receivedPerModulation)
        stats.txPacketsPerModulation = Self.counts(period.transmittedPerModulation)
        stats.txPacketsPerStatus = period.transmitStatuses
        stats.metadata = metadata
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
        table.sorted {
            ($0.key.dataRate.spreadingFactor, $0.key.dataRate.bandwidth.rawValue) < (
                $1.key.dataRate.spreadingFactor, $1.key.dataRate.bandwidth.rawValue
            )
        }.map { entry in
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
