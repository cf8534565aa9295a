import Cryptography
import LoRaPHY
import Messages
import Radio

/// A proof-of-coverage beacon: 51 bytes of data sent as a LoRaWAN proprietary frame
/// (MHDR 0xE0, 52 bytes on air), not inverted, on a channel of the region's Helium plan chosen
/// from the data, at the data rate that plan gives 51 bytes.
public struct Beacon: Sendable, Hashable {
    public static let dataLength = 51
    public static let frameLength = 52
    public static let mhdr: UInt8 = 0xE0

    public var data: [UInt8]
    public var localEntropy: [UInt8]
    public var remoteEntropy: [UInt8]
    public var frequencyHz: UInt32
    public var channel: Int
    public var dataRate: LoRaDataRate

    /// The frame on air: MHDR then the data.
    public var frame: [UInt8] { [Self.mhdr] + data }

    /// Derives a beacon: seed = SHA-256(remote entropy ‖ local entropy); the data is the first
    /// 51 bytes of SHA-256(seed ‖ 0x00) ‖ SHA-256(seed ‖ 0x01); channel and data rate as
    /// `transmission(ofData:region:)` gives them.
    public static func make(remoteEntropy: [UInt8], localEntropy: [UInt8], region: Region) -> Beacon? {
        let seed = SHA256.hash(remoteEntropy + localEntropy)
        let data = Array((SHA256.hash(seed + [0x00]) + SHA256.hash(seed + [0x01])).prefix(dataLength))
        guard let (frequency, channel, dataRate) = transmission(ofData: data, region: region) else { return nil }
        return Beacon(
            data: data, localEntropy: localEntropy, remoteEntropy: remoteEntropy, frequencyHz: frequency,
            channel: channel, dataRate: dataRate)
    }

    /// Where and how a beacon with `data` is sent in `region`, as Helium's gateways do
    /// (gateway-rs `Beacon::new` and `select_datarate`): the channel of the region's Helium
    /// plan that the data's first two bytes, read as a little-endian number, pick modulo the
    /// plan's channel count; the first spreading factor of the plan whose largest packet
    /// holds the 51 bytes of data, at the plan's bandwidth. A frame heard elsewhere, or
    /// otherwise, is no beacon of this region.
    public static func transmission(ofData data: [UInt8], region: Region) -> (
        frequencyHz: UInt32, channel: Int, dataRate: LoRaDataRate
    )? {
        let channels = region.helium.channels
        guard data.count >= 2, !channels.isEmpty, let dataRate = region.helium.dataRate(carrying: dataLength) else {
            return nil
        }
        let seed = Int(data[0]) | Int(data[1]) << 8
        let channel = seed % channels.count
        return (channels[channel], channel, dataRate)
    }

    /// The beacon data of a received frame, when it has a beacon's shape.
    public static func data(ofFrame payload: [UInt8]) -> [UInt8]? {
        guard payload.count == frameLength, payload[0] == mhdr else { return nil }
        return Array(payload.dropFirst())
    }
}

/// Helium's `data_rate` enum for a LoRa data rate: SF12BW125 = 0 … SF7BW500 = 17.
public func heliumDataRate(_ rate: LoRaDataRate) -> Helium_data_rate {
    let base: Int
    switch rate.bandwidth {
    case .khz125: base = 0
    case .khz250: base = 6
    case .khz500: base = 12
    default: return .sf12Bw125
    }
    return Helium_data_rate(rawValue: base + (12 - rate.spreadingFactor.rawValue)) ?? .sf12Bw125
}

/// A small least-recently-used set of byte strings, for beacons sent and beacons witnessed.
struct RecentSet {
    private var order: [[UInt8]] = []
    private var members: Set<[UInt8]> = []
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    func contains(_ item: [UInt8]) -> Bool { members.contains(item) }

    /// Adds `item`; returns false when it was there already.
    @discardableResult
    mutating func insert(_ item: [UInt8]) -> Bool {
        guard members.insert(item).inserted else { return false }
        order.append(item)
        if order.count > capacity { members.remove(order.removeFirst()) }
        return true
    }
}
