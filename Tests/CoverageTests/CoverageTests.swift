import Agent
import ChirpStack
import Clocks
import Credits
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
import Wire

@testable import Coverage
@testable import Transport

let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
func wallClock() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }

func temporaryStore() throws -> Store {
    try Store.open(
        directory: FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-coverage-\(UInt32.random(in: 0...UInt32.max))"
        ).path)
}

/// A hotspot on the simulated air: a mock board, its radio, a store and the coverage service.
struct Hotspot {
    let board: MockBoard
    let radio: SPIRadio
    let store: Store
    let identity: GatewayIdentity
    let coverage: CoverageService

    static func start(
        air: Air, profile: String = "mock", policy: any TransmitPolicy = RegionalTransmitPolicy(region: .eu868)
    ) async throws -> Hotspot {
        let board = try MockBoard(profile: BoardCatalog.loadFile(boardDirectory + "/\(profile).toml"), air: air)
        // Listening where beacons go: EU868's beacon data rate is DR0, SF12 at 125 kHz.
        let radio = try SPIRadio(
            board: board,
            configuration: RadioConfiguration(
                frequencyHz: 868_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz125)),
            policy: policy, logger: quiet)
        try await radio.start()
        let store = try temporaryStore()
        let identity = GatewayIdentity(key: .generate())
        let coverage = CoverageService(
            radio: radio, store: store, identity: identity, region: .eu868,
            topics: Topics(prefix: "eu868", gatewayID: identity.gatewayID), logger: quiet, now: wallClock)
        return Hotspot(board: board, radio: radio, store: store, identity: identity, coverage: coverage)
    }
}

/// Admits every transmission: for a sender that is a test's instrument.
struct UnlimitedAirtime: TransmitPolicy {
    func admit(_ request: TransmitRequest) -> Result<TransmitTicket, TransmitRefusal> {
        .success(TransmitTicket(id: 0))
    }
    func cancel(_ ticket: TransmitTicket) {}
}

/// Checks an Ed25519 signature with Python's `cryptography` (OpenSSL-independent code paths
/// aside, an implementation hotspotd does not share).
func verifiedByPython(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) throws -> Bool {
    let script = """
        import sys
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        key, message, signature = (bytes.fromhex(part) for part in sys.stdin.read().split())
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
            print("valid")
        except Exception:
            print("invalid")
        """
    let input = [publicKey, message, signature].map { Hex.encode($0) }.joined(separator: " ")
    let result = try run("/usr/bin/python3", ["-c", script], input: Data(input.utf8))
    guard result.status == 0 else { throw BrokerError("python3: \(result.error)") }
    return result.output.trimmingCharacters(in: .whitespacesAndNewlines) == "valid"
}

func unsignedBytes<Report: SignedReport>(_ report: Report) throws -> [UInt8] {
    var copy = report
    copy.signature = Data()
    return try copy.serializedBytes()
}

@Suite(.capturingLogs, .serialized) struct CoverageTests {
    @Test func beaconsAreDerivedFromTheEntropyAndCarriedAtTheSlowestRate() throws {
        let beacon = try #require(Beacon.make(remoteEntropy: [1, 2, 3], localEntropy: [4, 5, 6, 7], region: .eu868))
        #expect(beacon.data.count == 51 && beacon.frame.count == 52 && beacon.frame[0] == 0xE0)
        let seed = SHA256.hash([1, 2, 3, 4, 5, 6, 7])
        #expect(beacon.data == Array((SHA256.hash(seed + [0]) + SHA256.hash(seed + [1])).prefix(51)))
        #expect(beacon.dataRate == LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz125))
        // gateway-rs: the first two bytes, little-endian, modulo the Helium plan's 8 channels.
        let pick = Int(beacon.data[0]) | Int(beacon.data[1]) << 8
        #expect(beacon.channel == pick % 8 && beacon.frequencyHz == Region.eu868.helium.channels[pick % 8])
        #expect(
            Beacon.make(remoteEntropy: [1, 2, 3], localEntropy: [4, 5, 6, 8], region: .eu868)?.data != beacon.data)
        let us = try #require(Beacon.make(remoteEntropy: [], localEntropy: [1, 2, 3, 4], region: .us915))
        #expect(
            us.dataRate == LoRaDataRate(spreadingFactor: .sf9, bandwidth: .khz125),
            "Helium's US915 plan: SF10 carries 25 bytes, SF9 67")
        #expect((903_900_000...905_300_000).contains(us.frequencyHz), "Helium's US915 channels, sub-band 2")
        #expect(heliumDataRate(LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125)) == .sf7Bw125)
        #expect(heliumDataRate(LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz500)) == .sf12Bw500)
    }

    @Test func beaconMomentsFallInsideTheirWindow() {
        let interval: Int64 = 6 * 3600 * 1_000_000_000
        for _ in 0..<100 {
            let now = Int64.random(in: 0..<(1 << 62))
            let moment = CoverageService.beaconTime(windowContaining: now, interval: interval)
            #expect(moment / interval == now / interval)
        }
    }

    @Test func oneHotspotsBeaconIsWitnessedByAnotherAndBothReportsVerify() async throws {
        let air = Air(timeScale: 0)
        // The sender, a test instrument, is not held to the duty cycle: it beacons until one goes
        // on the witness's channel, one of the eight of Helium's EU868 plan.
        let sender = try await Hotspot.start(air: air, policy: UnlimitedAirtime())
        let witness = try await Hotspot.start(air: air)
        await sender.coverage.receiveEntropy([9, 9, 9, 9], timestamp: UInt64(wallClock()))
        let witnessing = Task {
            for await frame in witness.radio.frames {
                if try await witness.coverage.consider(frame) == .witnessed { return true }
            }
            return false
        }
        // The sender beacons; the witness radio listens on the beacon's channel.
        var outcome = BeaconOutcome.noDataRate
        for _ in 0..<200 {
            outcome = try await sender.coverage.beacon()
            if case .sent(let beacon) = outcome, beacon.frequencyHz == 868_100_000 { break }
        }
        guard case .sent(let beacon) = outcome else {
            Issue.record("no beacon went out: \(outcome)")
            return
        }
        #expect(try await withTimeout(seconds: 10) { (try? await witnessing.value) ?? false })

        let beaconReports = try await sender.store.outbox().filter { $0.kind == .beacon }
        let beaconReport = try Helium_PocLora_lora_beacon_report_req_v1(
            serializedBytes: try #require(beaconReports.last).payload)
        #expect(Array(beaconReport.data) == beacon.data)
        #expect(Array(beaconReport.remoteEntropy) == [9, 9, 9, 9])
        #expect(beaconReport.localEntropy.count == 4)
        #expect(beaconReport.frequency == 868_100_000 && beaconReport.datarate == .sf12Bw125)
        #expect(beaconReport.txPower == 140)
        #expect(SignedReports.verify(beaconReport) == sender.identity.publicKey)
        #expect(
            try verifiedByPython(
                publicKey: sender.identity.publicKey.keyBytes, message: try unsignedBytes(beaconReport),
                signature: Array(beaconReport.signature)))

        let witnessReports = try await witness.store.outbox().filter { $0.kind == .witness }
        #expect(witnessReports.count == 1)
        let witnessReport = try Helium_PocLora_lora_witness_report_req_v1(serializedBytes: witnessReports[0].payload)
        #expect(Array(witnessReport.data) == beacon.data)
        #expect(
            abs(witnessReport.signal - -700) <= 11,
            "the air's radio link, −70 dBm, in tenths, within the SX1276 register's resolution")
        #expect(witnessReport.snr == 90)
        #expect(witnessReport.frequency == 868_100_000)
        #expect(SignedReports.verify(witnessReport) == witness.identity.publicKey)
        #expect(
            try verifiedByPython(
                publicKey: witness.identity.publicKey.keyBytes, message: try unsignedBytes(witnessReport),
                signature: Array(witnessReport.signature)))
        var forged = witnessReport
        forged.signal = -300
        #expect(
            try !verifiedByPython(
                publicKey: witness.identity.publicKey.keyBytes, message: try unsignedBytes(forged),
                signature: Array(forged.signature)))

        // Beacons are never charged or forwarded as uplinks; the sender does not witness itself.
        #expect(try await witness.store.outbox().filter { $0.kind == .uplink || $0.kind == .uncharged }.isEmpty)
        #expect(try await sender.store.outbox().filter { $0.kind == .witness }.isEmpty)
        await sender.radio.stop()
        await witness.radio.stop()
    }

    /// A coverage service on the mock board's radio (EU868), for witnessing.
    func witnessingService() throws -> (Store, CoverageService) {
        let store = try temporaryStore()
        let identity = GatewayIdentity(key: .generate())
        let board = try MockBoard(profile: BoardCatalog.loadFile(boardDirectory + "/mock.toml"), air: Air(timeScale: 0))
        let radio = try SPIRadio(
            board: board,
            configuration: RadioConfiguration(
                frequencyHz: 868_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz125)),
            policy: RegionalTransmitPolicy(region: .eu868), logger: quiet)
        let coverage = CoverageService(
            radio: radio, store: store, identity: identity, region: .eu868,
            topics: Topics(prefix: "eu868", gatewayID: identity.gatewayID), logger: quiet, now: wallClock)
        return (store, coverage)
    }

    @Test func theSameBeaconHeardTwiceGivesOneReport() async throws {
        let (store, coverage) = try witnessingService()
        // 0x4242 % 8 picks channel 2 of Helium's EU868 plan, 867.5 MHz; 51 bytes go at SF12.
        let beacon = [UInt8(0xE0)] + [UInt8](repeating: 0x42, count: 51)
        var frame = RadioFrame(
            payload: beacon, frequencyHz: 867_500_000,
            dataRate: LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz125), codingRate: .cr4_5, rssiDBm: -110.4,
            snrDB: -7.25, crc: .ok, timestamp: 77, receivedAt: wallClock())
        #expect(try await coverage.consider(frame) == .witnessed)
        #expect(try await coverage.consider(frame) == .duplicate)
        frame.payload = [0xE0] + [UInt8](repeating: 0x43, count: 50)
        #expect(try await coverage.consider(frame) == .notABeacon, "51 bytes is not a beacon")
        let report = try Helium_PocLora_lora_witness_report_req_v1(
            serializedBytes: try #require(try await store.outbox().first).payload)
        #expect(report.signal == -1104 && report.snr == -73 && report.tmst == 77)
    }

    /// Any 52-byte frame starting 0xE0 used to be signed as a witness. Now only a frame heard
    /// where and how its own data says a beacon of the region is sent is witnessed, and at most
    /// a burst of them, then a few an hour.
    @Test func onlyPlausibleBeaconsAreWitnessedWithinABudget() async throws {
        let (store, coverage) = try witnessingService()
        let sf12 = LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz125)
        func frame(_ first: UInt8, _ fill: UInt8, frequency: UInt32, dataRate: LoRaDataRate) -> RadioFrame {
            RadioFrame(
                payload: [0xE0, first] + [UInt8](repeating: fill, count: 50), frequencyHz: frequency,
                dataRate: dataRate, codingRate: .cr4_5, rssiDBm: -100, snrDB: 5, crc: .ok, timestamp: 1,
                receivedAt: wallClock())
        }
        // Data 01 nn: 0xnn01 % 8 = 1, channel 1 of Helium's eight, 867.3 MHz.
        #expect(
            try await coverage.consider(frame(1, 0, frequency: 868_100_000, dataRate: sf12)) == .implausible,
            "another channel than its data picks")
        #expect(
            try await coverage.consider(
                frame(1, 0, frequency: 867_300_000, dataRate: LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125)))
                == .implausible, "a faster data rate than a beacon's")
        #expect(try await coverage.consider(frame(1, 0, frequency: 867_300_000, dataRate: sf12)) == .witnessed)
        var outcomes: [WitnessOutcome] = []
        for fill in 1...UInt8(CoverageService.witnessBurst + 4) {
            outcomes.append(try await coverage.consider(frame(1, fill, frequency: 867_300_000, dataRate: sf12)))
        }
        #expect(outcomes.filter { $0 == .witnessed }.count == CoverageService.witnessBurst - 1)
        #expect(outcomes.suffix(5).allSatisfy { $0 == .overBudget })
        #expect(
            try await store.outbox(limit: 1000).filter { $0.kind == .witness }.count == CoverageService.witnessBurst)
    }

    @Test func aReportMadeWhileTheBrokerIsDownArrivesAfterItReturns() async throws {
        // A consumer subscribed with a persistent session, then the broker goes away.
        let broker = try Broker()
        let port = broker.port
        let air = Air(timeScale: 0)
        let hotspot = try await Hotspot.start(air: air)
        let topics = Topics(prefix: "eu868", gatewayID: hotspot.identity.gatewayID)
        let collector = try CollectorClient(port: port, topic: topics.beacon)
        #expect(await eventually(within: 10) { collector.client.isConnected })
        try await Task.sleep(for: .milliseconds(300))
        broker.stop()
        let transport = try MQTTTransport(
            settings: MQTTSettings(
                host: "127.0.0.1", port: port, clientID: hotspot.identity.gatewayID, reconnectDelaySeconds: 1,
                reconnectDelayMaximumSeconds: 1), store: hotspot.store,
            dispatch: IncomingDispatch(topics: topics, commands: nil, downlinks: nil, logger: quiet, now: wallClock),
            logger: quiet)
        let running = Task { _ = try? await transport.run() }
        defer { running.cancel() }
        guard case .sent = try await hotspot.coverage.beacon() else {
            Issue.record("no beacon")
            return
        }
        #expect(await hotspot.store.outboxDepth() == 1, "queued while the broker is away")
        try await Task.sleep(for: .seconds(2))
        try broker.start()
        #expect(await eventually(within: 30) { collector.received.count >= 1 })
        let report = try Helium_PocLora_lora_beacon_report_req_v1(
            serializedBytes: try #require(collector.received.first))
        #expect(SignedReports.verify(report) == hotspot.identity.publicKey)
        #expect(await eventually(within: 10) { await hotspot.store.outboxDepth() == 0 })
        collector.client.stop()
        await hotspot.radio.stop()
    }
}

/// A subscriber with a persistent session: the broker keeps what it missed while away.
final class CollectorClient: @unchecked Sendable {
    let client: MQTTClient
    private let lock = NSLock()
    private var messages: [[UInt8]] = []
    private var task: Task<Void, Never>?

    init(port: Int, topic: String) throws {
        var settings = MQTTSettings(
            host: "127.0.0.1", port: port, clientID: "beacon-collector-\(UInt32.random(in: 0...UInt32.max))",
            reconnectDelaySeconds: 1, reconnectDelayMaximumSeconds: 1)
        settings.cleanSession = false
        client = try MQTTClient(settings: settings, subscriptions: [topic])
        let client = self.client
        task = Task { [weak self] in
            for await event in client.events {
                if case .message(_, let payload) = event {
                    self?.lock.withLock { self?.messages.append(payload) }
                }
            }
        }
        try client.start()
    }

    var received: [[UInt8]] { lock.withLock { messages } }
}
