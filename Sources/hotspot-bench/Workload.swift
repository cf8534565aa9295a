import ChirpStack
import Credits
import Foundation
import HALMock
import LoRaPHY
import LoRaWAN
import Messages
import Radio
import Store
import SwiftProtobuf
import TestSupport
import Wire

/// Paired sensors and their uplinks, the same for every path and in every process that builds
/// them with the same seed: real LoRaWAN 1.0 data frames, MIC'd with each sensor's NwkSKey and
/// encrypted with its AppSKey, with application payloads of 12 to 60 bytes.
struct Workload {
    struct Sensor {
        var devAddr: DevAddr
        var nwkSKey: [UInt8]
        var appSKey: [UInt8]
        var owner: String
    }

    static let frequencyHz: UInt32 = 868_100_000
    static let dataRate = LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125)
    static let owners = 10

    let sensors: [Sensor]
    /// PHYPayloads, in the order they are sent.
    let frames: [[UInt8]]

    init(frames count: Int, sensors sensorCount: Int = 100, seed: UInt64 = 0x4854_5350) {
        var random = SplitMix64(seed: seed)
        func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
        let sensors = (0..<sensorCount).map { index in
            Sensor(
                devAddr: DevAddr(0x2601_0000 | UInt32(index)), nwkSKey: bytes(16), appSKey: bytes(16),
                owner: "owner-\(index % Self.owners)")
        }
        var fCnts = [UInt32](repeating: 0, count: sensorCount)
        var frames: [[UInt8]] = []
        frames.reserveCapacity(count)
        for index in 0..<count {
            let sensorIndex = index % sensorCount
            let sensor = sensors[sensorIndex]
            let size = 12 + Int(random.next() % 49)
            let frame = try! LoRaWANCrypto.encodeDataFrame(
                devAddr: sensor.devAddr, fCnt: fCnts[sensorIndex], fPort: 2, payload: bytes(size),
                nwkSKey: sensor.nwkSKey, appSKey: sensor.appSKey
            )
            fCnts[sensorIndex] += 1
            frames.append(frame)
        }
        self.sensors = sensors
        self.frames = frames
    }

    /// Pairs every sensor and gives every owner more credits than the run needs.
    func provision(_ store: Store) async throws {
        for (index, sensor) in sensors.enumerated() {
            _ = try await store.pair(
                Pairing(devAddr: sensor.devAddr.rawValue, owner: sensor.owner, nwkSKey: sensor.nwkSKey, pairedAt: 1),
                nonce: Array("pair-\(index)".utf8), expiresAt: Int64(Date().timeIntervalSince1970) + 3600
            )
        }
        for owner in 0..<Self.owners {
            _ = try await store.credit(
                owner: "owner-\(owner)", amount: 1_000_000_000, nonce: Array("credit-\(owner)".utf8),
                expiresAt: Int64(Date().timeIntervalSince1970) + 3600, at: 1)
        }
    }

    /// A frame as the mock board's air carries it.
    static func airFrame(_ payload: [UInt8]) -> AirFrame {
        AirFrame(
            payload: payload, frequencyHz: frequencyHz,
            modulation: LoRaModulation(spreadingFactor: dataRate.spreadingFactor, bandwidth: dataRate.bandwidth),
            rssiDBm: -80, snrDB: 7.5, source: "bench")
    }

    /// What the agent publishes for each frame (a `gw.UplinkFrame` with the meter's metadata),
    /// for the floor to publish messages of the same sizes.
    func publishedPayloads(gatewayID: String) -> [[UInt8]] {
        frames.enumerated().map { index, payload in
            let frame = RadioFrame(
                payload: payload, frequencyHz: Self.frequencyHz, dataRate: Self.dataRate, codingRate: .cr4_5,
                rssiDBm: -80, snrDB: 7.5, crc: .ok, timestamp: UInt32(truncatingIfNeeded: index * 1000),
                receivedAt: 1_790_000_000_000_000_000
            )
            let seq = index + 1
            let metadata = [
                "dc": "1", "balance": String(1_000_000_000 - seq), "owner": "owner-\(index % Self.owners)",
                "seq": String(seq),
            ]
            let uplink = UplinkMessages.uplinkFrame(
                frame, gatewayID: gatewayID, uplinkID: UInt32(seq), metadata: metadata)
            return try! uplink.serializedBytes()
        }
    }

    /// One `rxpk` object of a PUSH_DATA body, as a packet forwarder writes it.
    static func rxpk(_ payload: [UInt8], timestamp: UInt32) -> String {
        #"""
        {"tmst":\#(timestamp),"chan":0,"rfch":0,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","codr":\#
        "4/5","rssi":-80,"lsnr":7.5,"size":\#(payload.count),"data":"\#(Base64.encode(payload))"}
        """#
    }
}
