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
import Logging
import Messages
import Radio
import Store
import Synchronization
import TestSupport

@testable import Transport

let gatewayID = "0016c001ff10a235"
/// The gateway's identity: pair commands seal NwkSKeys to its sealing key.
let gatewayKey = try! Ed25519PrivateKey(seed: [UInt8](repeating: 0x47, count: 32))
let topics = Topics(prefix: "eu868", gatewayID: gatewayID)
let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
let nwkSKey = [UInt8](repeating: 0x11, count: 16)
let appSKey = [UInt8](repeating: 0x22, count: 16)

func wallClock() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }

func temporaryStore(limit: Int = 1_000_000) throws -> Store {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
        "hotspotd-transport-\(UInt32.random(in: 0...UInt32.max))")
    return try Store.open(directory: url.path, outboxLimit: limit)
}

/// A subscriber with a persistent session, collecting what arrives, in order.
final class ReceivedMessages: Sendable {
    let list = Mutex<[(topic: String, payload: [UInt8])]>([])
}

final class Collector: Sendable {
    let client: MQTTClient
    private let received = ReceivedMessages()
    private let task: Task<Void, Never>

    init(
        port: Int, topics: [String], id: String = "collector-\(UInt32.random(in: 0...UInt32.max))",
        tls: (ca: String, cert: String, key: String)? = nil
    ) throws {
        var settings = MQTTSettings(
            host: "127.0.0.1", port: port, clientID: id, caFile: tls?.ca, certificateFile: tls?.cert, keyFile: tls?.key,
            reconnectDelaySeconds: 1, reconnectDelayMaximumSeconds: 2)
        settings.cleanSession = false
        let client = try MQTTClient(settings: settings, subscriptions: topics)
        self.client = client
        let received = self.received
        task = Task {
            for await event in client.events {
                if case .message(let topic, let payload) = event {
                    received.list.withLock { $0.append((topic, payload)) }
                }
            }
        }
        try client.start()
    }

    var messages: [(topic: String, payload: [UInt8])] { received.list.withLock { $0 } }

    func waitForCount(_ count: Int, within seconds: Double = 10) async -> Bool {
        await eventually(within: seconds) { self.messages.count >= count }
    }

    func waitUntilConnected() async -> Bool {
        await eventually { self.client.isConnected }
    }

    deinit {
        client.stop()
        task.cancel()
    }
}

/// A store, a meter and an MQTT transport to a broker, with one paired, credited sensor.
struct Agent {
    let store: Store
    let meter: Meter
    let transport: MQTTTransport
    let runTask: Task<Void, Never>
    let encoding: MessageEncoding

    /// `authority` signs the commands the agent accepts.
    static func start(
        port: Int, encoding: MessageEncoding = .protobuf, radio: (any Radio)? = nil, store: Store? = nil,
        credits: Int64 = 1_000_000, maximumInFlight: Int = 50, tls: (ca: String, cert: String?, key: String?)? = nil,
        authority: Ed25519PrivateKey = .generate()
    ) async throws -> Agent {
        let store = try store ?? temporaryStore()
        _ = try await store.pair(
            Pairing(devAddr: 0x2601_1BDA, owner: "alice", nwkSKey: nwkSKey, pairedAt: 1), nonce: secureRandomBytes(16),
            expiresAt: Int64(Date().timeIntervalSince1970) + 3600)
        _ = try await store.credit(
            owner: "alice", amount: credits, nonce: secureRandomBytes(16),
            expiresAt: Int64(Date().timeIntervalSince1970) + 3600, at: 1)
        let meter = Meter(store: store, topics: topics, encoding: encoding, logger: quiet, now: wallClock)
        let settings = MQTTSettings(
            host: "127.0.0.1", port: port, clientID: gatewayID, caFile: tls?.ca, certificateFile: tls?.cert,
            keyFile: tls?.key, maximumInFlight: maximumInFlight, reconnectDelaySeconds: 1,
            reconnectDelayMaximumSeconds: 2)
        let commands = CommandProcessor(
            store: store,
            authority: CommandAuthority(
                authority: authority.publicKey, gatewayID: gatewayID, sealingKey: gatewayKey.sealingKey),
            topics: topics, encoding: encoding, logger: quiet, now: wallClock)
        let downlinks = radio.map {
            DownlinkHandler(radio: $0, store: store, topics: topics, encoding: encoding, logger: quiet)
        }
        let dispatch = IncomingDispatch(
            topics: topics, commands: commands, downlinks: downlinks, logger: quiet, now: wallClock)
        let transport = try MQTTTransport(
            settings: settings, store: store, dispatch: dispatch, encoding: encoding, logger: quiet)
        let runTask = Task { _ = try? await transport.run() }
        return Agent(store: store, meter: meter, transport: transport, runTask: runTask, encoding: encoding)
    }

    /// Says OFFLINE without waiting for its PUBACK (`MQTTTransport.stop()` waits) and stops.
    func stop() {
        let offline = ConnStateMessages.encoded(.offline, gatewayID: topics.gatewayID, encoding: encoding)
        _ = try? transport.connection.publish(topic: topics.connState, payload: offline, qos: 1, retain: true)
        transport.connection.stop()
        runTask.cancel()
    }
}

/// A client that only publishes (a network server, the authority, an attacker), connected.
func connectedPublisher(port: Int, name: String) async throws -> MQTTClient {
    let client = try MQTTClient(
        settings: MQTTSettings(host: "127.0.0.1", port: port, clientID: "\(name)-\(UInt32.random(in: 0...UInt32.max))"),
        subscriptions: [])
    try client.start()
    guard await eventually(within: 10, { client.isConnected }) else {
        throw BrokerError("\(name) could not connect to the broker")
    }
    return client
}

/// A data uplink from the paired sensor.
func uplinkFrame(fCnt: UInt32, payload: [UInt8]) throws -> RadioFrame {
    let bytes = try LoRaWANCrypto.encodeDataFrame(
        devAddr: DevAddr(0x2601_1BDA), fCnt: fCnt, fPort: 2, payload: payload, nwkSKey: nwkSKey, appSKey: appSKey)
    return RadioFrame(
        payload: bytes, frequencyHz: 868_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125),
        codingRate: .cr4_5, rssiDBm: -71, snrDB: 9.25, crc: .ok, timestamp: 123_456, receivedAt: wallClock())
}
