import Agent
import Clocks
import Coverage
import Cryptography
import Foundation
import HAL
import HALMock
import LoRaPHY
import Logging
import Messages
import Radio
import Store
import SwiftProtobuf
import TestSupport
import Testing

/// The agent with its identity in the mock board's simulated ATECC608: what it signs, it signs
/// on the chip, and somebody else's ECDSA agrees.
@Suite(.capturingLogs, .serialized) struct SecureElementAgentTests {
    @Test(.timeLimit(.minutes(5)))
    func beaconAndWitnessReportsAreSignedByTheChipsKey() async throws {
        let broker = try Broker()
        defer { broker.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-ecc-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let recorder = try TopicRecorder(
            port: broker.port, topics: ["eu868/gateway/+/event/beacon", "eu868/gateway/+/event/witness"],
            file: directory + "/received.txt")

        let text = """
            [gateway]
            region = "EU868"
            board = "mock"
            key = "ecc://i2c-1:96?slot=0"
            data_dir = "\(directory)/data"
            shutdown_timeout = "2s"
            [radio]
            frequency = 868100000
            spreading_factor = 12
            [mqtt]
            server = "mqtt://127.0.0.1:\(broker.port)"
            [credits]
            authority = "\(Helium.address(of: Ed25519PrivateKey.generate().publicKey))"
            [coverage]
            interval = "1m"
            """
        let configuration = try Configuration.parse(text, file: "hotspotd.toml")
        let air = Air(timeScale: 0)
        let daemon = try await Daemon(
            configuration: configuration, environment: [:], catalog: BoardCatalog(directories: [boardDirectory]),
            logger: Logger(label: "test"), air: air)
        // The mock board's chip: its key is drawn from the profile's name.
        let chipKey = SimulatedECC608(seed: "mock").key.publicKey
        #expect(daemon.identity.publicKey == .eccCompact(chipKey))
        #expect(daemon.identity.address == HeliumPublicKey.eccCompact(chipKey).address)
        let running = Task { try await daemon.run() }
        let gpio = try #require((daemon.hardware as? MockBoard)?.virtualGPIO)
        // Running with its broker: the status LED (virtual line 26) is on.
        #expect(await eventually(within: 20) { gpio.level(26) })

        // Another hotspot in the same air beacons until one goes on the agent's channel (one of
        // the eight of Helium's EU868 plan): a test instrument, not held to the duty cycle.
        let board = try MockBoard(profile: BoardCatalog.loadFile(boardDirectory + "/mock.toml"), air: air)
        let radio = try SPIRadio(
            board: board,
            configuration: RadioConfiguration(
                frequencyHz: 868_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz125)),
            policy: AdmitEverything(), logger: Logger(label: "sender"))
        try await radio.start()
        let sender = GatewayIdentity(key: .generate())
        let senderCoverage = CoverageService(
            radio: radio, store: try Store.open(directory: directory + "/sender"), identity: sender, region: .eu868,
            topics: Topics(prefix: "eu868", gatewayID: sender.gatewayID), logger: Logger(label: "sender"),
            now: { wallClockNanoseconds() })
        await senderCoverage.receiveEntropy([1, 2, 3, 4], timestamp: UInt64(wallClockNanoseconds()))

        func reports() -> [(topic: String, payload: [UInt8])] {
            recorder.messages
        }
        // The agent witnesses the sender's beacon at once, and beacons itself within its 1-minute window.
        var sent = false
        var done = false
        let deadline = ContinuousClock.now + .seconds(150)
        while !done && ContinuousClock.now < deadline {
            if !sent, case .sent(let beacon) = (try? await senderCoverage.beacon()) ?? .noDataRate {
                sent = beacon.frequencyHz == 868_100_000
            }
            let topics = reports().map(\.topic)
            done =
                topics.contains { $0.hasSuffix("/event/witness") } && topics.contains { $0.hasSuffix("/event/beacon") }
            try await Task.sleep(for: .milliseconds(500))
        }
        await daemon.shutDown()
        _ = try? await running.value
        await radio.stop()
        #expect(!gpio.level(26), "stopped: the LED is off")
        #expect(done, "a witness and a beacon report on the broker: \(reports().map(\.topic))")

        for (topic, payload) in reports() {
            let unsigned: [UInt8]
            let pubKey: [UInt8]
            let signature: [UInt8]
            if topic.hasSuffix("/event/beacon") {
                var report = try Helium_PocLora_lora_beacon_report_req_v1(serializedBytes: payload)
                (pubKey, signature) = (Array(report.pubKey), Array(report.signature))
                report.signature = Data()
                unsigned = try report.serializedBytes()
            } else {
                var report = try Helium_PocLora_lora_witness_report_req_v1(serializedBytes: payload)
                (pubKey, signature) = (Array(report.pubKey), Array(report.signature))
                report.signature = Data()
                unsigned = try report.serializedBytes()
            }
            #expect(pubKey == [0x00] + chipKey.x, "ecc_compact: key type 0, then X")
            #expect(signature.first == 0x30, "DER")
            #expect(try verifiedByPythonECDSA(point: chipKey.x + chipKey.y, message: unsigned, signature: signature))
            #expect(
                try !verifiedByPythonECDSA(point: chipKey.x + chipKey.y, message: unsigned + [0], signature: signature))
        }
    }
}

/// Admits every transmission: for a test's sender, which must not run out of duty cycle.
struct AdmitEverything: TransmitPolicy {
    func admit(_ request: TransmitRequest) -> Result<TransmitTicket, TransmitRefusal> {
        .success(TransmitTicket(id: 0))
    }
    func cancel(_ ticket: TransmitTicket) {}
}
