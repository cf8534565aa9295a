import Agent
import ChirpStack
import Clocks
import Credits
import Cryptography
import Foundation
import HAL
import HALMock
import LoRaPHY
import LoRaWAN
import Messages
import Radio
import Store
import SwiftProtobuf
import Synchronization
import TestSupport
import Testing

@testable import Transport

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
struct Certificates {
    let directory: URL
    var ca: String { directory.appendingPathComponent("ca.crt").path }
    var serverCertificate: String { directory.appendingPathComponent("server.crt").path }
    var serverKey: String { directory.appendingPathComponent("server.key").path }
    var clientCertificate: String { directory.appendingPathComponent("client.crt").path }
    var clientKey: String { directory.appendingPathComponent("client.key").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-tls-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        chmod(directory.path, 0o755)
        let d = directory.path
        let openssl = "/usr/bin/openssl"
        func ok(_ result: (status: Int32, output: String, error: String)) throws {
            guard result.status == 0 else { throw BrokerError("openssl: \(result.error)") }
        }
        try ok(
            run(
                openssl,
                [
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/ca.key", "-out", "\(d)/ca.crt",
                    "-days", "2", "-subj", "/CN=hotspotd test CA",
                ]))
        try (["subjectAltName=IP:127.0.0.1"].joined(separator: "\n")).write(
            toFile: "\(d)/server.ext", atomically: true, encoding: .utf8)
        for name in ["server", "client"] {
            try ok(
                run(
                    openssl,
                    [
                        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/\(name).key", "-out",
                        "\(d)/\(name).csr", "-subj", "/CN=\(name == "server" ? "127.0.0.1" : "0016c001ff10a235")",
                    ]))
            var arguments = [
                "x509", "-req", "-in", "\(d)/\(name).csr", "-CA", "\(d)/ca.crt", "-CAkey", "\(d)/ca.key",
                "-CAcreateserial", "-out", "\(d)/\(name).crt", "-days", "2",
            ]
            if name == "server" { arguments += ["-extfile", "\(d)/server.ext"] }
            try ok(run(openssl, arguments))
            chmod("\(d)/\(name).key", 0o644)
        }
    }
}

/// A downlink item as a network server sends it: LoRa at 125 kHz, coding rate 4/5, inverted IQ,
/// to be sent at once.
func downlinkItem(frequency: UInt32, spreadingFactor: UInt32, power: Int32 = 14) -> Gw_DownlinkFrameItem {
    var lora = Gw_LoraModulationInfo()
    lora.bandwidth = 125_000
    lora.spreadingFactor = spreadingFactor
    lora.codeRate = .cr45
    lora.polarizationInversion = true
    var item = Gw_DownlinkFrameItem()
    item.phyPayload = Data([0x60, 0xDA, 0x1B, 0x01, 0x26, 0x20, 0x01, 0x00, 0x01, 0x02, 0x03, 0x04])
    item.txInfo.frequency = frequency
    item.txInfo.power = power
    item.txInfo.modulation.lora = lora
    item.txInfo.timing.immediately = Gw_ImmediatelyTimingInfo()
    return item
}

/// The mock board's SX1276 on EU868, receiving, and an agent connected to the broker on `port`
/// that transmits downlinks through it.
func startTransmittingAgent(port: Int) async throws -> (MockBoard, SPIRadio, Agent) {
    let board = try MockBoard(profile: BoardCatalog.loadFile(boardDirectory + "/mock.toml"), air: Air(timeScale: 0))
    let radio = try SPIRadio(
        board: board,
        configuration: RadioConfiguration(
            frequencyHz: 868_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125)),
        policy: RegionalTransmitPolicy(region: .eu868), logger: quiet)
    try await radio.start()
    return (board, radio, try await Agent.start(port: port, radio: radio))
}

@Suite(.capturingLogs, .serialized) struct SecurityAndCommandTests {
    @Test func aTLSListenerWithClientCertificatesAcceptsTheAgentAndRefusesItWithoutOne() async throws {
        let certificates = try Certificates()
        let broker = try Broker(
            configuration: """
                cafile \(certificates.ca)
                certfile \(certificates.serverCertificate)
                keyfile \(certificates.serverKey)
                require_certificate true
                """)
        let good = try await Agent.start(
            port: broker.port, tls: (certificates.ca, certificates.clientCertificate, certificates.clientKey))
        #expect(
            await eventually(within: 10) { good.transport.connection.isConnected },
            "accepted with a valid client certificate")
        good.stop()

        let anonymous = try await Agent.start(port: broker.port, tls: (certificates.ca, nil, nil))
        try await Task.sleep(for: .seconds(3))
        #expect(!anonymous.transport.connection.isConnected, "refused without one")
        anonymous.stop()

        let plain = try await Agent.start(port: broker.port)
        try await Task.sleep(for: .seconds(2))
        #expect(!plain.transport.connection.isConnected, "refused without TLS")
        plain.stop()
    }

    @Test func mqttFiveConnectsToo() async throws {
        let broker = try Broker()
        let settings = MQTTSettings(
            host: "127.0.0.1", port: broker.port, clientID: "v5-\(UInt32.random(in: 0...UInt32.max))",
            protocolVersion: 5)
        let client = try MQTTClient(settings: settings, subscriptions: [])
        try client.start()
        #expect(await eventually(within: 10) { client.isConnected })
        client.stop()
    }

    @Test func aDownlinkCommandIsTransmittedAndAcknowledgedItemByItem() async throws {
        let broker = try Broker()
        let collector = try Collector(port: broker.port, topics: [topics.ack, topics.rejected])
        #expect(await collector.waitUntilConnected())
        let (board, radio, agent) = try await startTransmittingAgent(port: broker.port)
        defer { agent.stop() }
        #expect(await eventually(within: 10) { agent.transport.connection.isConnected })

        // RX1 on a frequency EU868 forbids (refused: TX_FREQ), then RX2 at 869.525 MHz, then a third never tried.
        var downlink = Gw_DownlinkFrame()
        downlink.downlinkID = 4242
        downlink.gatewayID = gatewayID
        downlink.items = [
            downlinkItem(frequency: 915_000_000, spreadingFactor: 7),
            downlinkItem(frequency: 869_525_000, spreadingFactor: 12),
            downlinkItem(frequency: 868_100_000, spreadingFactor: 7),
        ]
        let publisher = try await connectedPublisher(port: broker.port, name: "ns")
        try publisher.publish(topic: topics.down, payload: try downlink.serializedBytes())
        #expect(await collector.waitForCount(1, within: 15))
        let ack = try Gw_DownlinkTxAck(
            serializedBytes: try #require(collector.messages.first { $0.topic == topics.ack }).payload)
        #expect(ack.downlinkID == 4242)
        #expect(ack.gatewayID == gatewayID)
        #expect(ack.items.map(\.status) == [.txFreq, .ok, .ignored])
        #expect(board.air.transmissions.count == 1)
        #expect(board.air.transmissions.first?.modulation.spreadingFactor == .sf12)

        try publisher.publish(topic: topics.down, payload: [0xFF, 0xFF, 0xFF])
        #expect(await collector.waitForCount(2, within: 15))
        let rejection = try Hotspotd_Rejection(serializedBytes: try #require(collector.messages.last).payload)
        #expect(rejection.reason == "undecodable")
        publisher.stop()
        await radio.stop()
    }

    @Test func creditCommandsArriveOverMQTT() async throws {
        let broker = try Broker()
        let authority = Ed25519PrivateKey.generate()
        let agent = try await Agent.start(port: broker.port, authority: authority)
        defer { agent.stop() }
        let (store, transport) = (agent.store, agent.transport)
        #expect(await eventually(within: 10) { transport.connection.isConnected })
        let publisher = try await connectedPublisher(port: broker.port, name: "authority")
        let command = try CommandSigner.sign(
            .credit(owner: "bob", amount: 77), gatewayID: gatewayID, key: authority,
            expiresAt: UInt64(Date().timeIntervalSince1970) + 60)
        try publisher.publish(topic: topics.credit, payload: command)
        #expect(await eventually(within: 10) { (try? await store.account(owner: "bob"))??.balance == 77 })
        publisher.stop()
    }

    /// Forged, foreign, replayed, expired, misdirected, oversized and garbage commands arrive on
    /// the command topics between two good ones: each is refused with its reason on
    /// `event/rejected`, and only the good ones change a balance.
    @Test func hostileCommandsAreRefusedWithTheirReasonsAndNoneIsApplied() async throws {
        let broker = try Broker()
        let authority = Ed25519PrivateKey.generate()
        let agent = try await Agent.start(port: broker.port, authority: authority)
        defer { agent.stop() }
        let (store, transport) = (agent.store, agent.transport)
        let collector = try Collector(port: broker.port, topics: [topics.rejected])
        #expect(await collector.waitUntilConnected())
        #expect(await eventually(within: 10) { transport.connection.isConnected })
        let publisher = try await connectedPublisher(port: broker.port, name: "attacker")

        let now = UInt64(Date().timeIntervalSince1970)
        func credit(
            _ amount: Int64, key: Ed25519PrivateKey = authority, gateway: String = gatewayID, expiresAt: UInt64? = nil
        ) throws -> [UInt8] {
            try CommandSigner.sign(
                .credit(owner: "mallory", amount: amount), gatewayID: gateway, key: key,
                expiresAt: expiresAt ?? now + 60)
        }
        let good = try credit(10)
        var forged = try Hotspotd_SignedCommand(serializedBytes: try credit(5_000))
        var body = try Hotspotd_CommandBody(serializedBytes: forged.body)
        body.credit.amount = 1_000_000  // the signature was made over 5,000
        forged.body = try body.serializedBytes()
        let hostile: [(topic: String, payload: [UInt8], reason: String)] = [
            (topics.credit, try forged.serializedBytes(), "bad_signature"),
            (topics.credit, try credit(1_000, key: .generate()), "wrong_signer"),
            (topics.credit, good, "replayed"),
            (topics.credit, try credit(1_000, expiresAt: now - 1), "expired"),
            (topics.credit, try credit(1_000, gateway: "00000000deadbeef"), "wrong_gateway"),
            (topics.credit, try credit(1_000) + [UInt8](repeating: 0, count: 100_000), "oversized"),
            (topics.pair, Array("{\"pair\":\"everything\"}".utf8), "undecodable"),
            (topics.pair, try credit(1_000), "invalid"),
        ]
        try publisher.publish(topic: topics.credit, payload: good)
        #expect(await eventually(within: 10) { (try? await store.account(owner: "mallory"))??.balance == 10 })
        for message in hostile {
            try publisher.publish(topic: message.topic, payload: message.payload)
        }
        let last = try credit(1)
        try publisher.publish(topic: topics.credit, payload: last)
        #expect(await eventually(within: 10) { (try? await store.account(owner: "mallory"))??.balance == 11 })
        #expect(await collector.waitForCount(hostile.count, within: 10))
        let reasons = try collector.messages.map { try Hotspotd_Rejection(serializedBytes: $0.payload).reason }
        #expect(reasons.sorted() == hostile.map(\.reason).sorted())
        #expect(try await store.account(owner: "mallory")?.balance == 11, "only the two good credits were applied")
        publisher.stop()
    }

    /// A downlink no region allows (40 dBm), one on a forbidden frequency, and a payload too
    /// large to be a downlink: refused with TX_POWER, TX_FREQ and `oversized`; nothing is sent.
    @Test func impossibleDownlinksAreRefusedWithTheirAcks() async throws {
        let broker = try Broker()
        let collector = try Collector(port: broker.port, topics: [topics.ack, topics.rejected])
        #expect(await collector.waitUntilConnected())
        let (board, radio, agent) = try await startTransmittingAgent(port: broker.port)
        defer { agent.stop() }
        #expect(await eventually(within: 10) { agent.transport.connection.isConnected })
        func downlink(id: UInt32, frequency: UInt32, power: Int32) throws -> [UInt8] {
            var frame = Gw_DownlinkFrame()
            frame.downlinkID = id
            frame.items = [downlinkItem(frequency: frequency, spreadingFactor: 9, power: power)]
            return try frame.serializedBytes()
        }
        let publisher = try await connectedPublisher(port: broker.port, name: "ns")
        try publisher.publish(topic: topics.down, payload: try downlink(id: 1, frequency: 869_525_000, power: 40))
        try publisher.publish(topic: topics.down, payload: try downlink(id: 2, frequency: 2_400_000_000, power: 14))
        try publisher.publish(
            topic: topics.down, payload: [UInt8](repeating: 0x0A, count: DownlinkHandler.maximumSize + 1))
        #expect(await collector.waitForCount(3, within: 15))
        var statuses: [UInt32: [Gw_TxAckStatus]] = [:]
        var rejections: [String] = []
        for message in collector.messages {
            if message.topic == topics.ack {
                let ack = try Gw_DownlinkTxAck(serializedBytes: message.payload)
                statuses[ack.downlinkID] = ack.items.map(\.status)
            } else {
                rejections.append(try Hotspotd_Rejection(serializedBytes: message.payload).reason)
            }
        }
        #expect(statuses == [1: [.txPower], 2: [.txFreq]])
        #expect(rejections == ["oversized"])
        #expect(board.air.transmissions.isEmpty)
        publisher.stop()
        await radio.stop()
    }
}

@Suite(.capturingLogs) struct StatisticsTests {
    @Test func statsCountTrafficPerFrequencyModulationAndStatus() async throws {
        let store = try temporaryStore()
        let statistics = TrafficStatistics()
        let reporter = StatsReporter(statistics: statistics, store: store, topics: topics) {
            ["version": "0.1.0", "board": "mock", "region": "EU868", "refused_no_credit": "3"]
        }
        var frame = try uplinkFrame(fCnt: 1, payload: [1])
        statistics.recordReceived(frame)
        frame.frequencyHz = 868_300_000
        statistics.recordReceived(frame)
        frame.crc = .bad
        statistics.recordReceived(frame)
        let request = TransmitRequest(
            payload: [1], frequencyHz: 869_525_000, dataRate: LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz125),
            powerDBm: 14, invertedIQ: true)
        statistics.recordTransmission(request, outcome: .sent(powerDBm: 14))
        statistics.recordTransmission(request, outcome: .dutyCycleExhausted)
        let stats = try await reporter.report(at: 1_700_000_000_000_000_000)
        #expect(stats.rxPacketsReceived == 3 && stats.rxPacketsReceivedOk == 2)
        #expect(stats.txPacketsReceived == 2 && stats.txPacketsEmitted == 1)
        #expect(stats.rxPacketsPerFrequency == [868_100_000: 1, 868_300_000: 2])
        #expect(stats.txPacketsPerFrequency == [869_525_000: 1])
        #expect(stats.rxPacketsPerModulation.first?.modulation.lora.spreadingFactor == 7)
        #expect(stats.rxPacketsPerModulation.first?.count == 3)
        #expect(stats.txPacketsPerStatus == ["OK": 1, "DUTY_CYCLE_OVERFLOW": 1])
        #expect(stats.metadata["region"] == "EU868" && stats.metadata["outbox_depth"] == "0")
        let queued = try #require(try await store.outbox().first { $0.topic == topics.stats })
        #expect(try Gw_GatewayStats(serializedBytes: queued.payload) == stats)
        let next = try await reporter.report(at: 1_700_000_030_000_000_000)
        #expect(next.rxPacketsReceived == 0, "each report covers its own period")
    }
}

/// hotspotd connects with the gateway ID as its client ID. A broker pushes an older
/// connection off when a newcomer brings the same client ID, so anyone with a login could
/// keep the hotspot off the broker; `use_username_as_clientid` (the README's broker
/// configuration) binds the client ID to the login and ends that.
@Suite(.capturingLogs, .serialized) struct ClientIDTakeoverTests {
    @Test(arguments: [false, true])
    func aClientWithTheGatewaysIDPushesTheHotspotOffOnlyWhereIDsAreNotBoundToLogins(bound: Bool) async throws {
        let broker = try Broker(configuration: bound ? "use_username_as_clientid true" : "")
        let hotspot = try MQTTClient(
            settings: MQTTSettings(
                host: "127.0.0.1", port: broker.port, clientID: gatewayID, username: "hotspot-\(gatewayID)",
                password: "secret", reconnectDelaySeconds: 1, reconnectDelayMaximumSeconds: 2), subscriptions: [])
        let disconnections = Mutex(0)
        let watcher = Task {
            for await event in hotspot.events {
                if case .disconnected = event { disconnections.withLock { $0 += 1 } }
            }
        }
        defer { watcher.cancel() }
        try hotspot.start()
        defer { hotspot.stop() }
        #expect(await eventually(within: 10) { hotspot.isConnected })

        let attacker = try MQTTClient(
            settings: MQTTSettings(
                host: "127.0.0.1", port: broker.port, clientID: gatewayID, username: "mallory", password: "mine",
                reconnectDelaySeconds: 1, reconnectDelayMaximumSeconds: 2), subscriptions: [])
        try attacker.start()
        defer { attacker.stop() }
        #expect(await eventually(within: 10) { attacker.isConnected })
        if bound {
            // Both stay connected, each under its own login's ID: nothing to wait for but time.
            try await Task.sleep(for: .seconds(2))
            #expect(disconnections.withLock { $0 } == 0, "the hotspot kept its connection")
            #expect(hotspot.isConnected)
        } else {
            #expect(
                await eventually(within: 10) { disconnections.withLock { $0 } > 0 },
                "without the binding the attack works")
        }
    }
}
