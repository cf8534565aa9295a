import Coverage
import Cryptography
import HALMock
import LoRaPHY
import LoRaWAN
import Radio
import ServiceLifecycle
import Wire

/// A sensor of the demo: sends encrypted, MIC'd LoRaWAN data uplinks into the mock board's air.
public struct SimulatedSensor: Sendable {
    public var name: String
    public var devAddr: DevAddr
    public var nwkSKey: [UInt8]
    public var appSKey: [UInt8]
    public var payloadSize: Int
    public var interval: Duration

    public init(
        name: String, devAddr: DevAddr, nwkSKey: [UInt8], appSKey: [UInt8], payloadSize: Int = 12, interval: Duration
    ) {
        self.name = name
        self.devAddr = devAddr
        self.nwkSKey = nwkSKey
        self.appSKey = appSKey
        self.payloadSize = payloadSize
        self.interval = interval
    }

    /// Frame number `fCnt`: an FPort 2 reading whose bytes count up, so each frame differs.
    public func frame(fCnt: UInt32) throws(LoRaWANError) -> [UInt8] {
        let reading = (0..<payloadSize).map { UInt8(truncatingIfNeeded: Int(fCnt) &+ $0) }
        return try LoRaWANCrypto.encodeDataFrame(
            devAddr: devAddr, fCnt: fCnt, fPort: 2, payload: reading, nwkSKey: nwkSKey, appSKey: appSKey)
    }

    /// The demo's sensors, whose keys `scripts/demo` pairs: alice's (paired, with credit),
    /// bob's (paired, with little credit, so it runs out) and one nobody paired.
    public static let demo: [SimulatedSensor] = [
        SimulatedSensor(
            name: "alice-thermometer", devAddr: DevAddr(0x2601_1BDA), nwkSKey: hex("2B7E151628AED2A6ABF7158809CF4F3C"),
            appSKey: hex("000102030405060708090A0B0C0D0E0F"), interval: .seconds(5)),
        SimulatedSensor(
            name: "bob-door", devAddr: DevAddr(0x2601_1BDB), nwkSKey: hex("3C4FCF098815F7ABA6D2AE2816157E2B"),
            appSKey: hex("0F0E0D0C0B0A09080706050403020100"), payloadSize: 30, interval: .seconds(7)),
        SimulatedSensor(
            name: "stranger", devAddr: DevAddr(0x2601_1BDC), nwkSKey: hex("11111111111111111111111111111111"),
            appSKey: hex("22222222222222222222222222222222"), interval: .seconds(11)),
    ]

    private static func hex(_ text: String) -> [UInt8] { Hex.decode(text) ?? [] }
}

/// Runs simulated sensors on the agent's channel and a neighbour hotspot's beacons, until
/// cancelled or, in a service group, until the group shuts down.
public struct SensorSimulator: Service, Sendable {
    public let air: Air
    public let sensors: [SimulatedSensor]
    public let channel: RadioConfiguration
    public let region: Region
    public let beaconInterval: Duration?

    public init(
        air: Air, sensors: [SimulatedSensor], channel: RadioConfiguration, region: Region,
        beaconInterval: Duration? = .seconds(20)
    ) {
        self.air = air
        self.sensors = sensors
        self.channel = channel
        self.region = region
        self.beaconInterval = beaconInterval
    }

    public func run() async {
        await cancelWhenGracefulShutdown { await transmit() }
    }

    private func transmit() async {
        await withTaskGroup(of: Void.self) { group in
            for sensor in sensors {
                group.addTask { await send(sensor) }
            }
            if let beaconInterval {
                group.addTask { await beacons(every: beaconInterval) }
            }
        }
    }

    private func airFrame(_ payload: [UInt8], source: String, rssi: Double) -> AirFrame {
        AirFrame(
            payload: payload, frequencyHz: channel.frequencyHz,
            modulation: LoRaModulation(
                spreadingFactor: channel.dataRate.spreadingFactor, bandwidth: channel.dataRate.bandwidth),
            syncWord: channel.syncWord, rssiDBm: rssi, snrDB: 7.5, source: source
        )
    }

    private func send(_ sensor: SimulatedSensor) async {
        var fCnt: UInt32 = 0
        try? await Task.sleep(for: .seconds(2))
        while !Task.isCancelled {
            if let frame = try? sensor.frame(fCnt: fCnt) {
                air.send(airFrame(frame, source: sensor.name, rssi: -70 - Double(sensor.devAddr.rawValue & 0x0F) * 3))
            }
            fCnt &+= 1
            try? await Task.sleep(for: sensor.interval)
        }
    }

    /// A neighbour's beacons as the agent would hear them: each one whose data puts it on the
    /// agent's channel (a neighbour beacons on any of the region's Helium channels; one in
    /// eight lands on the agent's in EU868), sent at the beacon's own data rate. An agent that
    /// listens at another data rate, or off the Helium channels, hears none.
    private func beacons(every interval: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            guard !Task.isCancelled, let beacon = Self.beacon(on: channel.frequencyHz, region: region) else {
                continue
            }
            air.send(
                AirFrame(
                    payload: beacon.frame, frequencyHz: beacon.frequencyHz,
                    modulation: LoRaModulation(
                        spreadingFactor: beacon.dataRate.spreadingFactor, bandwidth: beacon.dataRate.bandwidth),
                    syncWord: channel.syncWord, rssiDBm: -105, snrDB: 7.5, source: "neighbour hotspot"))
        }
    }

    /// A beacon of fresh entropy that goes on `frequencyHz`, or nil when none does within a few
    /// hundred draws (a channel that is not one of the region's Helium channels).
    static func beacon(on frequencyHz: UInt32, region: Region) -> Beacon? {
        for _ in 0..<400 {
            if let beacon = Beacon.make(remoteEntropy: [], localEntropy: secureRandomBytes(4), region: region),
                beacon.frequencyHz == frequencyHz
            {
                return beacon
            }
        }
        return nil
    }
}
