import CMosquitto
import Foundation
import Logging
import Store
import Synchronization
import TestSupport
import Testing

@testable import Transport

/// The publisher's window, reconnects and acknowledgements, and the transport's lanes and
/// goodbye, over the in-process connection: no broker, the test plays it.
@Suite struct OutboxPublisherTests {
    let store: Store
    let connection = InProcessConnection()

    init() throws {
        store = try temporaryStore()
    }

    func fill(_ count: Int, from start: Int = 0) async throws {
        for index in start..<start + count {
            try await store.enqueue(
                [NewMessage(kind: .uplink, topic: "up", messageID: "m\(index)", payload: [UInt8(index & 0xFF)])], at: 0)
        }
    }

    func uplinksPublished() -> [UInt8] {
        connection.published.filter { $0.topic == "up" }.map { $0.payload[0] }
    }

    @Test func theWindowBoundsWhatIsInFlightAndAnAcknowledgementDeletesTheRow() async throws {
        let publisher = OutboxPublisher(store: store, client: connection, maximumInFlight: 5, logger: quiet)
        let running = Task { await publisher.run() }
        defer { running.cancel() }
        try await fill(20)
        connection.connect()
        #expect(await eventually(within: 30) { uplinksPublished().count == 5 })
        try await Task.sleep(for: .milliseconds(100))
        #expect(uplinksPublished().count == 5, "no more than the window without acknowledgements")
        connection.acknowledge(Array(connection.unacknowledged.prefix(2)))
        #expect(await eventually(within: 30) { uplinksPublished().count == 7 })
        #expect(await eventually(within: 30) { await store.outboxDepth() == 18 }, "acknowledged rows are deleted")
        while await store.outboxDepth() > 0 {
            connection.acknowledge()
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(uplinksPublished() == (0..<20).map { UInt8($0) }, "in outbox order")
        #expect(await publisher.counters.maximumInFlightSeen == 5)
        #expect(await publisher.counters.acknowledged == 20)
    }

    @Test func aDisconnectPausesAndAReconnectSaysOnlineAndGoesOn() async throws {
        let publisher = OutboxPublisher(store: store, client: connection, maximumInFlight: 50, logger: quiet)
        let connects = Atomic(0)
        let running = Task { await publisher.run { connects.add(1, ordering: .relaxed) } }
        defer { running.cancel() }
        connection.connect()
        try await fill(3)
        #expect(await eventually(within: 30) { uplinksPublished().count == 3 })
        connection.acknowledge()
        connection.disconnect()
        try await fill(4, from: 3)
        try await Task.sleep(for: .milliseconds(100))
        #expect(uplinksPublished().count == 3, "nothing is published while disconnected")
        connection.connect()
        #expect(await eventually(within: 30) { uplinksPublished().count == 7 })
        // The outbox's own wake-ups may publish before the connection's event is handled.
        #expect(
            await eventually(within: 30) { connects.load(ordering: .relaxed) == 2 },
            "onConnect (the ONLINE state) runs on every connection")
        #expect(uplinksPublished() == (0..<7).map { UInt8($0) })
    }

    @Test func aMessageTheBrokerCanNeverTakeDoesNotHoldUpTheRest() async throws {
        let publisher = OutboxPublisher(store: store, client: connection, maximumInFlight: 10, logger: quiet)
        let running = Task { await publisher.run() }
        defer { running.cancel() }
        connection.failPublishes(with: MQTTError("payload too large", code: MOSQ_ERR_PAYLOAD_SIZE.rawValue))
        connection.connect()
        try await fill(1)
        #expect(await eventually(within: 30) { await store.outboxDepth() == 0 }, "dropped, not retried forever")
        #expect(await publisher.counters.unpublishable == 1)
        connection.failPublishes(with: nil)
        try await fill(1, from: 1)
        #expect(await eventually(within: 30) { uplinksPublished() == [1] })
    }

    @Test func aPassingFailureIsRetriedNotDropped() async throws {
        let publisher = OutboxPublisher(store: store, client: connection, maximumInFlight: 10, logger: quiet)
        let running = Task { await publisher.run() }
        defer { running.cancel() }
        connection.connect()
        connection.failPublishes(with: MQTTError("no connection", code: MOSQ_ERR_NO_CONN.rawValue))
        try await fill(2)
        try await Task.sleep(for: .milliseconds(100))
        #expect(await store.outboxDepth() == 2)
        connection.failPublishes(with: nil)
        connection.disconnect()
        connection.connect()
        #expect(await eventually(within: 30) { uplinksPublished() == [0, 1] })
    }

    @Test func stopWaitsForOfflinesAcknowledgementAtMostASecond() async throws {
        // A broker that acknowledges at once: stop returns with OFFLINE acknowledged.
        let connection = InProcessConnection(acknowledgeAtOnce: true)
        let presence = MQTTTransport.Presence(topic: "state", online: Array("on".utf8), offline: Array("off".utf8))
        let transport = MQTTTransport(connection: connection, store: store, presence: presence, slowTopic: nil) {
            _, _ in
        }
        let running = Task { try? await transport.run() }
        defer { running.cancel() }
        connection.connect()
        #expect(await eventually(within: 30) { connection.published.contains { $0.payload == presence.online } })
        #expect(await transport.stop(), "acknowledged: stop did not wait out its second")
        #expect(connection.published.last?.payload == presence.offline)
        #expect(connection.published.last?.retain == true)
    }

    @Test func stopGivesUpOnASilentBrokerAfterASecond() async throws {
        let presence = MQTTTransport.Presence(topic: "state", online: [1], offline: [0])
        let transport = MQTTTransport(connection: connection, store: store, presence: presence, slowTopic: nil) {
            _, _ in
        }
        let running = Task { try? await transport.run() }
        defer { running.cancel() }
        connection.connect()
        #expect(await eventually(within: 30) { !connection.published.isEmpty })
        let started = ContinuousClock.now
        #expect(await transport.stop() == false)
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(950) && waited < .seconds(20), "\(waited)")
        #expect(!connection.isConnected)
    }

    @Test func messagesGoToTheHandlerInTwoLanes() async throws {
        let seen = Mutex<[String]>([])
        let release = Atomic(false)
        let transport = MQTTTransport(
            connection: connection, store: store, presence: .init(topic: "state", online: [1], offline: [0]),
            slowTopic: "down"
        ) { topic, message in
            // The slow lane waits (a downlink waiting for airtime): commands must not wait behind it.
            if topic == "down" {
                while !release.load(ordering: .relaxed) { try? await Task.sleep(for: .milliseconds(2)) }
            }
            if case .payload(let bytes) = message { seen.withLock { $0.append("\(topic):\(bytes.first ?? 0)") } }
        }
        let running = Task { try? await transport.run() }
        defer { running.cancel() }
        connection.connect()
        connection.deliver(topic: "down", payload: [1])
        connection.deliver(topic: "pair", payload: [2])
        connection.deliver(topic: "credit", payload: [3])
        #expect(await eventually(within: 30) { seen.withLock { $0 } == ["pair:2", "credit:3"] })
        release.store(true, ordering: .relaxed)
        #expect(await eventually(within: 30) { seen.withLock { $0 }.last == "down:1" })
    }
}
