import ChirpStack
import Clocks
import Coverage
import HALMock
import LoRaPHY
import LoRaWAN
import Radio
import TestSupport
import Testing

@testable import Agent

@Suite(.capturingLogs) struct SensorSimulatorTests {
    @Test func demoSensorsSendFramesTheirKeysVerify() throws {
        for sensor in SimulatedSensor.demo {
            for fCnt: UInt32 in [0, 1, 70_000] {
                let frame = try PHYPayload.decode(try sensor.frame(fCnt: fCnt))
                #expect(try frame.hasValidMIC(nwkSKey: sensor.nwkSKey, fCnt: fCnt), "\(sensor.name) \(fCnt)")
                let reading = try frame.decryptedPayload(nwkSKey: sensor.nwkSKey, appSKey: sensor.appSKey, fCnt: fCnt)
                #expect(reading == (0..<sensor.payloadSize).map { UInt8(truncatingIfNeeded: Int(fCnt) + $0) })
            }
        }
        #expect(Set(SimulatedSensor.demo.map(\.devAddr)).count == SimulatedSensor.demo.count)
    }

    @Test func sensorsAndANeighboursBeaconReachTheAir() async throws {
        let air = Air(timeScale: 1)
        let channel = RadioConfiguration(
            frequencyHz: 868_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125))
        var quick = SimulatedSensor.demo[0]
        quick.interval = .milliseconds(100)
        let simulator = SensorSimulator(
            air: air, sensors: [quick], channel: channel, region: .eu868, beaconInterval: .milliseconds(300))
        let task = Task { await simulator.run() }
        // The sensor starts after 2 s, then every 100 ms; the beacon every 300 ms.
        #expect(await eventually(within: 60) { air.counts.sent >= 8 })
        task.cancel()
        await task.value
        let settled = air.counts.sent
        try await Task.sleep(for: .milliseconds(400))
        #expect(air.counts.sent == settled, "cancelling stops the simulation")
    }

    /// The neighbour's beacon lands on the agent's channel, at the beacon's own data rate.
    @Test func theNeighboursBeaconGoesWhereABeaconOfItsDataGoes() throws {
        let beacon = try #require(SensorSimulator.beacon(on: 868_100_000, region: .eu868))
        #expect(beacon.frequencyHz == 868_100_000)
        #expect(beacon.dataRate == LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz125))
        #expect(Beacon.transmission(ofData: beacon.data, region: .eu868)?.frequencyHz == 868_100_000)
        #expect(SensorSimulator.beacon(on: 869_525_000, region: .eu868) == nil, "not a Helium channel")
    }
}
