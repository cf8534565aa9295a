import Agent
import Cryptography
import Foundation
import HAL
import HALMock
import LoRaPHY
import LoRaWAN
import Logging
import Messages
import Radio
import SwiftProtobuf
import TestSupport
import Testing

/// A channel plan from the network server, end to end on an SPI radio: the agent (what
/// `hotspotd run` runs) on the mock board and a real mosquitto; the plan made by ChirpStack's
/// published bindings and published as a network server would; sensors heard on the new
/// channel only; the version in `event/stats`; the plan still in force after a restart.
@Suite(.capturingLogs, .serialized) struct ChannelPlanAgentTests {
    @Test(.timeLimit(.minutes(3)))
    func anSPIRadioListensWhereThePlanSaysAndKeepsItAcrossARestart() async throws {
        let broker = try Broker()
        defer { broker.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-plan-agent-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let recorder = try TopicRecorder(
            port: broker.port, topics: ["eu868/gateway/+/event/up", "eu868/gateway/+/event/stats"],
            file: directory + "/received.txt")
        let key = Ed25519PrivateKey.generate()
        try KeyFile.create(directory + "/gateway.key", key: key)
        let gatewayID = GatewayIdentity(key: key).gatewayID
        let configuration = try Configuration.parse(
            """
            [gateway]
            region = "EU868"
            board = "mock"
            key_file = "\(directory)/gateway.key"
            data_dir = "\(directory)/data"
            shutdown_timeout = "2s"
            [radio]
            frequency = 868100000
            spreading_factor = 7
            [mqtt]
            server = "mqtt://127.0.0.1:\(broker.port)"
            [credits]
            authority = "\(Helium.address(of: Ed25519PrivateKey.generate().publicKey))"
            forward_unpaired = true
            [coverage]
            enabled = false
            [stats]
            interval = "1s"
            """, file: "hotspotd.toml")
        let air = Air(timeScale: 0)
        func uplink(_ counter: UInt32, at frequency: UInt32, _ sf: SpreadingFactor) throws -> AirFrame {
            let frame = try LoRaWANCrypto.encodeDataFrame(
                devAddr: DevAddr(0x2601_2000), fCnt: counter, fPort: 1, payload: [UInt8(counter)],
                nwkSKey: [UInt8](repeating: 1, count: 16), appSKey: [UInt8](repeating: 2, count: 16))
            return AirFrame(
                payload: frame, frequencyHz: frequency,
                modulation: LoRaModulation(spreadingFactor: sf, bandwidth: .khz125, codingRate: .cr4_5))
        }
        @Sendable func uplinksHeard() -> [(frequency: UInt32, dataRate: String)] {
            recorder.messages.filter { $0.topic.hasSuffix("/event/up") }.compactMap { _, payload in
                guard let frame = try? Gw_UplinkFrame(serializedBytes: payload) else { return nil }
                let lora = frame.txInfo.modulation.lora
                return (frame.txInfo.frequency, "SF\(lora.spreadingFactor)BW\(lora.bandwidth / 1000)")
            }
        }
        @Sendable func configVersions() -> [String] {
            recorder.messages.filter { $0.topic.hasSuffix("/event/stats") }.compactMap {
                try? Gw_GatewayStats(serializedBytes: $0.payload).configVersion
            }
        }

        var daemon = try await Daemon(
            configuration: configuration, environment: [:], catalog: BoardCatalog(directories: [boardDirectory]),
            logger: Logger(label: "test"), air: air)
        var running = Task { [daemon] in try await daemon.run() }
        #expect(await eventually(within: 20) { configVersions().contains("") }, "the configured channel: no version")
        air.send(try uplink(1, at: 868_100_000, .sf7))
        #expect(await eventually(within: 10) { uplinksHeard().count == 1 })

        // The network server's plan: one channel, 867.5 MHz at SF9.
        let plan = try encodeWithChirpStack(
            json: """
                {"gateway_id": "\(gatewayID)", "version": "single-867.5",
                 "channels": [{"frequency": 867500000,
                               "lora_modulation_config": {"bandwidth": 125000, "spreading_factors": [9]}}]}
                """, as: "GatewayConfiguration")
        try publish(plan, to: "eu868/gateway/\(gatewayID)/command/config", port: broker.port, directory: directory)
        #expect(await eventually(within: 20) { configVersions().last == "single-867.5" })
        air.send(try uplink(2, at: 868_100_000, .sf7))
        air.send(try uplink(3, at: 867_500_000, .sf9))
        #expect(await eventually(within: 10) { uplinksHeard().count == 2 })
        try await Task.sleep(for: .milliseconds(500))
        #expect(uplinksHeard().map(\.frequency) == [868_100_000, 867_500_000], "the old channel is no longer heard")
        #expect(uplinksHeard().last?.dataRate == "SF9BW125")
        // What is kept on disk is a gw.GatewayConfiguration ChirpStack's bindings read back.
        let kept = try Array(Data(contentsOf: URL(fileURLWithPath: directory + "/data/channel-plan.pb")))
        let read = try #require(try decodeWithChirpStack([kept], as: "GatewayConfiguration").first)
        #expect(read["version"] as? String == "single-867.5")
        let channels = read["channels"] as? [[String: Any]]
        #expect((channels?.first?["frequency"] as? NSNumber)?.intValue == 867_500_000)

        // A plan the radio cannot take (eight channels): refused, the one in force stays.
        let eight = (0..<8).map {
            let modulation = #"{"bandwidth": 125000, "spreading_factors": [7]}"#
            return #"{"frequency": \#(867_100_000 + 200_000 * $0), "lora_modulation_config": \#(modulation)}"#
        }
        let wide = try encodeWithChirpStack(
            json: #"{"version": "eight", "channels": [\#(eight.joined(separator: ","))]}"#, as: "GatewayConfiguration")
        try publish(wide, to: "eu868/gateway/\(gatewayID)/command/config", port: broker.port, directory: directory)
        // Garbage on the topic: refused as such, counted, nothing else changes.
        try publish(
            [0xFF, 0xFF, 0x01], to: "eu868/gateway/\(gatewayID)/command/config", port: broker.port, directory: directory
        )
        let plans = daemon.channelPlans
        #expect(await eventually(within: 20) { plans.refusals == 2 })
        #expect(daemon.channelPlans.version == "single-867.5")

        // A restart keeps the plan: the radio listens on 867.5 MHz at SF9 from the start.
        await daemon.shutDown()
        _ = try? await running.value
        let before = uplinksHeard().count
        daemon = try await Daemon(
            configuration: configuration, environment: [:], catalog: BoardCatalog(directories: [boardDirectory]),
            logger: Logger(label: "test"), air: air)
        running = Task { [daemon] in try await daemon.run() }
        #expect(daemon.channelPlans.version == "single-867.5")
        air.send(try uplink(4, at: 868_100_000, .sf7))
        air.send(try uplink(5, at: 867_500_000, .sf9))
        #expect(await eventually(within: 20) { uplinksHeard().count == before + 1 })
        #expect(uplinksHeard().last?.frequency == 867_500_000)
        await daemon.shutDown()
        _ = try? await running.value
    }

    func publish(_ payload: [UInt8], to topic: String, port: Int, directory: String) throws {
        let file = directory + "/payload.bin"
        try Data(payload).write(to: URL(fileURLWithPath: file))
        let result = try run("/usr/bin/mosquitto_pub", ["-p", "\(port)", "-q", "1", "-t", topic, "-f", file])
        guard result.status == 0 else { throw BrokerError("mosquitto_pub: \(result.error)") }
    }
}
