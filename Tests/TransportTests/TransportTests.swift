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
import TestSupport
import Testing
import Wire

@testable import Transport

@Suite(.capturingLogs, .serialized) struct TransportTests {
    @Test func uplinksThroughTheRadioLayerArriveAndDecodeIndependently() async throws {
        let broker = try Broker()
        let collector = try Collector(port: broker.port, topics: [topics.up])
        #expect(await collector.waitUntilConnected())
        let agent = try await Agent.start(port: broker.port)
        defer { agent.stop() }

        // Through the radio layer: a simulated sensor on the mock board's air, the SX1276 driver.
        let board = try MockBoard(profile: BoardCatalog.loadFile(boardDirectory + "/mock.toml"), air: Air(timeScale: 0))
        let radio = try SPIRadio(
            board: board,
            configuration: RadioConfiguration(
                frequencyHz: 868_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125)),
            policy: RegionalTransmitPolicy(region: .eu868), logger: quiet)
        try await radio.start()
        let pipeline = Task {
            for await frame in radio.frames { _ = try? await agent.meter.meter(frame) }
        }
        defer { pipeline.cancel() }
        var sent: [[UInt8]] = []
        for fCnt in 1...3 {
            let frame = try uplinkFrame(fCnt: UInt32(fCnt), payload: [UInt8](repeating: UInt8(fCnt), count: 10))
            sent.append(frame.payload)
            board.air.send(
                AirFrame(
                    payload: frame.payload, frequencyHz: 868_100_000,
                    modulation: LoRaModulation(spreadingFactor: .sf7, bandwidth: .khz125), rssiDBm: -71, snrDB: 9.25))
            // One frame at a time, as sensors on one channel are heard: the radio's FIFO holds one.
            let store = agent.store
            #expect(await eventually { (try? await store.charges(owner: "alice").count) == fCnt })
        }
        #expect(await collector.waitForCount(3))
        let messages = collector.messages
        #expect(messages.allSatisfy { $0.topic == "eu868/gateway/0016c001ff10a235/event/up" })
        let decoded = try decodeWithChirpStack(messages.map(\.payload), as: "UplinkFrame")
        #expect(decoded.count == 3)
        for (index, frame) in decoded.enumerated() {
            #expect(
                (frame["phy_payload"] as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } == sent[index]
            )
            let rxInfo = frame["rx_info"] as? [String: Any]
            let metadata = rxInfo?["metadata"] as? [String: String]
            #expect(metadata?["owner"] == "alice")
            #expect(metadata?["dc"] == "1")
            #expect(metadata?["seq"] == String(index + 1))
            #expect(rxInfo?["gateway_id"] as? String == gatewayID)
            let txInfo = frame["tx_info"] as? [String: Any]
            #expect(txInfo?["frequency"] as? Int == 868_099_976 || txInfo?["frequency"] as? Int == 868_100_000)
            let lora = (txInfo?["modulation"] as? [String: Any])?["lora"] as? [String: Any]
            #expect(lora?["spreading_factor"] as? Int == 7)
            #expect(lora?["bandwidth"] as? Int == 125_000)
        }
        await radio.stop()
    }

    @Test func jsonModeCarriesTheSameFields() async throws {
        let broker = try Broker()
        let collector = try Collector(port: broker.port, topics: [topics.up])
        #expect(await collector.waitUntilConnected())
        let agent = try await Agent.start(port: broker.port, encoding: .json)
        defer { agent.stop() }
        let frame = try uplinkFrame(fCnt: 1, payload: [1, 2, 3])
        _ = try await agent.meter.meter(frame)
        #expect(await collector.waitForCount(1))
        let payload = try #require(collector.messages.first?.payload)
        let fromJSON = try Gw_UplinkFrame(jsonUTF8Bytes: payload)
        #expect(Array(fromJSON.phyPayload) == frame.payload)
        #expect(fromJSON.rxInfo.metadata["dc"] == "1" && fromJSON.rxInfo.metadata["owner"] == "alice")
        let object = try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any]
        #expect(object?["phyPayload"] != nil, "protobuf's JSON mapping, camelCase names")
        let expected = UplinkMessages.uplinkFrame(
            frame, gatewayID: gatewayID, uplinkID: 1, metadata: fromJSON.rxInfo.metadata)
        #expect(fromJSON.txInfo == expected.txInfo)
    }

    @Test func aBrokerOutageOfThirtySecondsLosesNothing() async throws {
        let broker = try Broker()
        let collector = try Collector(port: broker.port, topics: [topics.up], id: "outage-collector")
        #expect(await collector.waitUntilConnected())
        let agent = try await Agent.start(port: broker.port)
        defer { agent.stop() }
        var fCnt: UInt32 = 0
        func send(_ count: Int) async throws {
            for _ in 0..<count {
                fCnt += 1
                _ = try await agent.meter.meter(
                    try uplinkFrame(fCnt: fCnt, payload: [UInt8](repeating: UInt8(truncatingIfNeeded: fCnt), count: 8)))
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        try await send(50)
        broker.stop()
        try await send(100)  // while the broker is down: into the outbox
        try await Task.sleep(for: .seconds(28))
        try broker.start()
        try await send(50)
        #expect(await collector.waitForCount(200, within: 30))
        let frames = try collector.messages.map { try Gw_UplinkFrame(serializedBytes: $0.payload) }
        let seqs = frames.map { Int($0.rxInfo.metadata["seq"] ?? "") ?? -1 }
        #expect(Set(seqs) == Set(1...200), "every uplink arrived")
        // In order per device: a duplicate may repeat an id, never reorder first arrivals.
        var firstSeen: [Int] = []
        for seq in seqs where !firstSeen.contains(seq) { firstSeen.append(seq) }
        #expect(firstSeen == Array(1...200))
        #expect(await eventually(within: 10) { await agent.store.outboxDepth() == 0 }, "everything acknowledged")
    }

    @Test func killingTheAgentMakesTheBrokerPublishOffline() async throws {
        let broker = try Broker()
        let collector = try Collector(port: broker.port, topics: [topics.connState])
        #expect(await collector.waitUntilConnected())
        let agent = try await Agent.start(port: broker.port)
        #expect(await collector.waitForCount(1))
        #expect(try Gw_ConnState(serializedBytes: collector.messages[0].payload).state == .online)
        agent.transport.connection.abandon()
        agent.runTask.cancel()
        #expect(await collector.waitForCount(2, within: 60))
        let last = try Gw_ConnState(serializedBytes: try #require(collector.messages.last).payload)
        #expect(last.state == .offline)
        #expect(last.gatewayID == gatewayID)
    }

    /// In JSON an OFFLINE state would be `{"gatewayId":…}` alone (proto3 leaves out the
    /// enum's 0): it carries the word, and reads back as OFFLINE.
    @Test func theJSONOfflineStateSaysOffline() throws {
        let offline = ConnStateMessages.encoded(.offline, gatewayID: gatewayID, encoding: .json)
        #expect(String(decoding: offline, as: UTF8.self) == #"{"gatewayId":"\#(gatewayID)","state":"OFFLINE"}"#)
        #expect(try Gw_ConnState(jsonUTF8Bytes: offline).state == .offline)
        let online = ConnStateMessages.encoded(.online, gatewayID: gatewayID, encoding: .json)
        #expect(try Gw_ConnState(jsonUTF8Bytes: online).state == .online)
    }

    @Test func theOutboxStaysBoundedWhileManyMessagesWait() async throws {
        let port = try Broker.freePort()
        let store = try temporaryStore()
        let count = 100_000
        for start in stride(from: 0, to: count, by: 5_000) {
            try await store.enqueue(
                (start..<start + 5_000).map {
                    NewMessage(
                        kind: .uplink, topic: topics.up, messageID: "m\($0)", payload: Array("message \($0)".utf8))
                }, at: 1)
        }
        let agent = try await Agent.start(port: port, store: store, maximumInFlight: 64)
        defer { agent.stop() }
        try await Task.sleep(for: .seconds(2))
        #expect(
            await agent.transport.publisher.counters.published == 0,
            "nothing is taken from disk while the broker is away")
        #expect(await store.outboxDepth() == count + 0)
        let broker = try Broker(port: port)
        #expect(await eventually(within: 120) { await store.outboxDepth() == 0 }, "drained")
        let counters = await agent.transport.publisher.counters
        #expect(counters.maximumInFlightSeen <= 64, "never more than the window in flight")
        #expect(counters.acknowledged >= count)
        broker.stop()
    }
}
