import Agent
import ChirpStack
import Clocks
import Credits
import Cryptography
import Foundation
import LoRaWAN
import Messages
import SemtechUDP
import Store
import SwiftProtobuf
import Synchronization
import TestSupport
import Testing
import Transport
import Wire

#if canImport(Glibc)
    import Glibc
#endif

/// The suites that each run `hotspotd run` processes with brokers of their own and measure
/// how promptly they answer (FaultTests, TrustBoundaryTests, FailoverTests, MetricsTests,
/// FilterTests, ChannelPlanForwarderTests): one at a time, so that they do not load the machine for one
/// another, while the other suites run beside them.
@Suite(.serialized) enum AgentProcessTests {}

/// A hotspot with a concentrator, for fault tests: `hotspotd run` (board rak2287) in a process
/// of its own behind a fake packet forwarder on loopback, a real mosquitto, and a subscriber
/// with a persistent session (mosquitto_sub) writing down every `event/up` it is given. The
/// store starts with four sensors paired; dave's owner has credit for a few uplinks only, so
/// refusals for credit happen along the way.
final class FaultRig: @unchecked Sendable {
    struct Sensor {
        var devAddr: DevAddr
        var owner: String
        var nwkSKey: [UInt8]
        var fCnt: UInt32 = 0
    }

    let directory: String
    let dataDirectory: String
    let broker: Broker
    let udpPort: Int
    /// The topic prefix: the region in lower case.
    let prefix: String
    let granted: [String: Int64] = ["alice": 1_000_000, "bob": 1_000_000, "carol": 1_000_000, "dave": 40]
    /// The network authority whose signed commands the agent takes, and the gateway's ID.
    let authority = Ed25519PrivateKey.generate()
    static let gatewayID = "0016c001ff10a235"
    private(set) var sensors: [Sensor]
    private(set) var agent: pid_t?
    private(set) var manager: ServiceManager?
    private let collector: pid_t
    private let collectorFile: String
    private let forwarder: UDPSocket
    private var token: UInt16 = 0
    /// Datagrams sent and not acknowledged yet: token → how many frames each carried, and when.
    private var unacknowledged: [UInt16: (frames: Int, sentAt: ContinuousClock.Instant)] = [:]
    /// How long each PUSH_ACK took, in the order they came: the waits above are bounds for a
    /// loaded machine; these are what shows a receive thread that stalled.
    var acknowledgementDelays: [Duration] = []
    private(set) var framesAcknowledged = 0

    var logFile: String { directory + "/agent.log" }

    /// `dataDirectory`: where the store lives (a small tmpfs, say); by default in the rig's own
    /// temporary directory. `bindHost` is where the agent listens for the forwarder (on the
    /// rig's port); `semtechUDP`, `mqtt` and `radio` go into those sections as they are.
    init(
        dataDirectory: String? = nil, brokerConfiguration: String = "", bindHost: String = "127.0.0.1",
        semtechUDP: String = "", mqtt: String = "", radio: String = "", coverage: String = "enabled = false",
        region: String = "EU868",
        stats: String = "interval = \"1h\"", filters: String = "", backupBrokers: [String] = [], metrics: String = ""
    ) async throws {
        prefix = region.lowercased()
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "hotspotd-fault-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.dataDirectory = dataDirectory ?? directory + "/data"
        // The broker gives the subscriber every message at once (no in-flight window to queue
        // behind) and keeps its session in its persistence, saved every second.
        broker = try Broker(configuration: "max_inflight_messages 0\nmax_queued_messages 0\n" + brokerConfiguration)
        udpPort = try Self.freeUDPPort()
        sensors = ["alice", "bob", "carol", "dave"].enumerated().map { index, owner in
            Sensor(
                devAddr: DevAddr(0x2601_1000 + UInt32(index)), owner: owner,
                nwkSKey: (0..<16).map { UInt8(index * 16 + $0) })
        }
        forwarder = try UDPSocket(binding: SocketAddress("127.0.0.1:0")!)

        let store = try Store.open(directory: self.dataDirectory)
        for sensor in sensors {
            _ = try await store.pair(
                Pairing(devAddr: sensor.devAddr.rawValue, owner: sensor.owner, nwkSKey: sensor.nwkSKey, pairedAt: 1),
                nonce: Array("pair-\(sensor.owner)".utf8), expiresAt: Int64(Date().timeIntervalSince1970) + 3600)
        }
        for (owner, amount) in granted {
            _ = try await store.credit(
                owner: owner, amount: amount, nonce: Array("credit-\(owner)".utf8),
                expiresAt: Int64(Date().timeIntervalSince1970) + 3600, at: 1)
        }

        // One broker, or this rig's first and the backups after it.
        let first = "mqtt://127.0.0.1:\(broker.port)"
        let brokers =
            backupBrokers.isEmpty
            ? "server = \"\(first)\""
            : "servers = [" + ([first] + backupBrokers).map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        try """
        [gateway]
        region = "\(region)"
        board = "rak2287"
        id = "\(Self.gatewayID)"
        key_file = "\(directory)/gateway.key"
        data_dir = "\(self.dataDirectory)"
        shutdown_timeout = "3s"
        [radio]
        \(radio)
        [semtech_udp]
        bind = "\(bindHost):\(udpPort)"
        \(semtechUDP)
        [mqtt]
        \(brokers)
        keepalive = "5s"
        \(mqtt)
        [credits]
        authority = "\(Helium.address(of: authority.publicKey))"
        [coverage]
        \(coverage)
        [stats]
        \(stats)
        [filters]
        \(filters)
        [metrics]
        \(metrics)
        """.write(toFile: directory + "/hotspotd.toml", atomically: true, encoding: .utf8)

        collectorFile = directory + "/collected.hex"
        collector = try spawn(
            "/usr/bin/mosquitto_sub",
            [
                "-p", "\(broker.port)", "-i", "collector-\(udpPort)", "-c", "-q", "1", "-t", "+/gateway/+/event/up",
                "-F", "%x",
            ], logFile: collectorFile)
        // Subscribed once a probe comes back; the broker has saved the session a second later.
        guard await collectorCaughtUp() else { throw BrokerError("the collector did not subscribe") }
        try await Task.sleep(for: .milliseconds(1500))
    }

    deinit {
        if let agent {
            kill(agent, SIGKILL)
            _ = waitForExit(agent, seconds: 5)
        }
        kill(collector, SIGKILL)
        _ = waitForExit(collector, seconds: 5)
        try? FileManager.default.removeItem(atPath: directory)
    }

    private var probes = 0

    /// Publishes a probe where the collector listens and waits until it arrives: the collector
    /// is connected, and has been given everything the broker held for it before the probe.
    func collectorCaughtUp(within seconds: Double = 15) async -> Bool {
        probes += 1
        let marker = "probe-\(probes)"
        let hex = Hex.encode(Array(marker.utf8))
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            _ = try? run(
                "/usr/bin/mosquitto_pub",
                ["-p", "\(broker.port)", "-t", "probe/gateway/probe/event/up", "-q", "1", "-m", marker])
            if await eventually(
                within: 0.3,
                { (try? String(contentsOfFile: self.collectorFile, encoding: .utf8))?.contains(hex) == true })
            {
                return true
            }
        }
        return false
    }

    // MARK: The agent

    /// Starts `hotspotd run` under a stand-in for systemd, and waits for READY=1. `wrapper`
    /// goes before the program (setpriv, say).
    func startAgent(extraArguments: [String] = [], wrapper: [String] = [], environment: [String: String] = [:])
        async throws
    {
        guard !agentIsRunning else { throw BrokerError("an agent is running already") }
        let manager = ServiceManager()
        self.manager = manager
        let program = productsDirectory.appendingPathComponent("hotspotd").path
        let command = wrapper + [program, "run", "--config", directory + "/hotspotd.toml"] + extraArguments
        agent = try spawn(
            command[0], Array(command.dropFirst()),
            environment: [
                "NOTIFY_SOCKET": manager.path, "WATCHDOG_USEC": "2000000",
                "HOTSPOTD_BOARD_DIR": repositoryRoot + "/Board",
            ].merging(environment) { $1 }, logFile: logFile)
        guard
            await eventually(
                within: 30, { manager.messages.contains { $0.contains("READY=1") } || !self.agentIsRunning }),
            manager.messages.contains(where: { $0.contains("READY=1") })
        else {
            // Not left behind: one that did not exit by itself is killed.
            if agentIsRunning { killAgent() }
            throw BrokerError("hotspotd did not become ready: \(tail(of: logFile))")
        }
    }

    /// SIGKILL: no drain, no goodbye.
    func killAgent() {
        guard let agent else { return }
        kill(agent, SIGKILL)
        _ = waitForExit(agent, seconds: 10)
        self.agent = nil
    }

    /// SIGTERM; the exit status.
    @discardableResult
    func stopAgent() -> Int32? {
        guard let agent else { return nil }
        kill(agent, SIGTERM)
        let status = waitForExit(agent, seconds: 20)
        if status == nil {
            _ = try? run("/usr/bin/gdb", ["-p", "\(agent)", "-batch", "-ex", "thread apply all bt 25"]).output.write(
                toFile: directory + "/hung.txt", atomically: true, encoding: .utf8)
            kill(agent, SIGKILL)
        }
        self.agent = nil
        return status
    }

    /// The exit status of an agent that ended by itself, once `agentIsRunning` saw it end.
    private(set) var lastExitStatus: Int32?

    var agentIsRunning: Bool {
        guard let agent else { return false }
        guard let status = waitForExit(agent, seconds: 0) else { return true }
        lastExitStatus = status
        self.agent = nil
        return false
    }

    /// The STATUS= lines systemd would show, oldest first.
    var statusLines: [String] {
        (manager?.messages ?? []).flatMap { $0.split(separator: "\n") }.filter { $0.hasPrefix("STATUS=") }.map(
            String.init)
    }

    // MARK: The packet forwarder

    /// Sends one PUSH_DATA carrying `count` uplinks, round robin over the sensors, each with a
    /// new frame counter; true if the agent acknowledged it. Uplinks of an unacknowledged
    /// datagram count as never received.
    @discardableResult
    func push(_ count: Int = 8) async -> Bool {
        var packets: [String] = []
        for _ in 0..<count {
            let index = Int(token) % sensors.count
            sensors[index].fCnt += 1
            let sensor = sensors[index]
            let reading = (0..<20).map { UInt8(truncatingIfNeeded: Int(sensor.fCnt) &+ $0) }
            guard
                let frame = try? LoRaWANCrypto.encodeDataFrame(
                    devAddr: sensor.devAddr, fCnt: sensor.fCnt, fPort: 2, payload: reading, nwkSKey: sensor.nwkSKey,
                    appSKey: sensor.nwkSKey)
            else { continue }
            token &+= 1
            packets.append(
                #"""
                {"tmst":\#(UInt32(truncatingIfNeeded: Int(token) * 1000)),"chan":0,"rfch":0,"freq":868.1,"stat":1,\#
                "modu":"LORA","datr":"SF7BW125","codr":"4/5","rssi":-60,"lsnr":9.5,"size":\#(frame.count),"data":\#
                "\#(Base64.encode(frame))"}
                """#
            )
        }
        let high = UInt8(token >> 8)
        let low = UInt8(token & 0xFF)
        let datagram =
            [2, high, low, 0x00] + Self.forwarderEUI + Array(#"{"rxpk":[\#(packets.joined(separator: ","))]}"#.utf8)
        unacknowledged[token] = (count, ContinuousClock.now)
        _ = forwarder.send(datagram, to: SocketAddress("127.0.0.1:\(udpPort)")!)
        // A short look for this datagram's PUSH_ACK keeps the stream paced like a forwarder's;
        // one that comes later still counts, when `collectAcknowledgements` sees it.
        let sentToken = token
        let deadline = ContinuousClock.now + .milliseconds(200)
        repeat {
            collectAcknowledgements()
            if unacknowledged[sentToken] == nil { return true }
            try? await Task.sleep(for: .milliseconds(1))
        } while ContinuousClock.now < deadline
        return false
    }

    /// Publishes `command`, signed by the authority, on its command topic, as the network does;
    /// the bytes published (to send them again, as someone who captured them would).
    /// A pair's NwkSKey is sealed to the agent's key (`sealed` false: in the clear).
    @discardableResult
    func send(_ command: Command, expiresIn seconds: Int64 = 600, sealed: Bool = true) throws -> [UInt8] {
        let sealingKey = sealed ? (try? KeyFile.read(directory + "/gateway.key"))?.sealingKey.publicKey : nil
        let bytes = try CommandSigner.sign(
            command, gatewayID: Self.gatewayID, key: authority,
            expiresAt: UInt64(Int64(Date().timeIntervalSince1970) + seconds), sealingKey: sealingKey)
        try publish(command: bytes, on: command.name)
        return bytes
    }

    /// Publishes a signed command's bytes on `command/{name}`.
    func publish(command bytes: [UInt8], on name: String) throws {
        let file = directory + "/command-\(UInt32.random(in: 0...UInt32.max)).bin"
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let published = try run(
            "/usr/bin/mosquitto_pub",
            [
                "-p", "\(broker.port)", "-q", "1", "-t", "\(prefix)/gateway/\(Self.gatewayID)/command/\(name)", "-f",
                file,
            ])
        guard published.status == 0 else { throw BrokerError("mosquitto_pub: \(published.error)") }
    }

    /// Sends one PUSH_DATA carrying `frames` (PHYPayloads as heard), and waits for its PUSH_ACK.
    @discardableResult
    func push(frames: [[UInt8]]) async -> Bool {
        token &+= 1
        let packets = frames.map { frame in
            #"""
            {"tmst":\#(UInt32(truncatingIfNeeded: Int(token) * 1000)),"chan":0,"rfch":0,"freq":868.1,"stat":1,\#
            "modu":"LORA","datr":"SF7BW125","codr":"4/5","rssi":-60,"lsnr":9.5,"size":\#(frame.count),"data":\#
            "\#(Base64.encode(frame))"}
            """#
        }
        pushData(json: #"{"rxpk":[\#(packets.joined(separator: ","))]}"#, token: token)
        unacknowledged[token] = (frames.count, ContinuousClock.now)
        let sent = token
        return await eventually(within: 10) { [self] in
            collectAcknowledgements()
            return unacknowledged[sent] == nil
        }
    }

    /// Sends `datagram` to the agent's UDP port as it is (from the rig's forwarder socket).
    func sendDatagram(_ datagram: [UInt8]) {
        _ = forwarder.send(datagram, to: SocketAddress("127.0.0.1:\(udpPort)")!)
    }

    /// The agent's resident memory, from /proc, in bytes.
    var agentResidentBytes: Int? {
        guard let agent, let text = try? String(contentsOfFile: "/proc/\(agent)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kilobytes * 1024
    }

    /// Sends a PUSH_DATA with `json` as its body, as the forwarder (EUI AA555A0000000001).
    func pushData(json: String, token: UInt16) {
        let datagram = [2, UInt8(token >> 8), UInt8(token & 0xFF), 0x00] + Self.forwarderEUI + Array(json.utf8)
        _ = forwarder.send(datagram, to: SocketAddress("127.0.0.1:\(udpPort)")!)
    }

    /// Takes every PUSH_ACK waiting on the forwarder's socket; each acknowledges the datagram
    /// of its token, however late it came. Other datagrams (PULL_ACK, PULL_RESP) are kept in
    /// `received`.
    private func collectAcknowledgements() {
        while let reply = forwarder.receive(timeoutMilliseconds: 0) {
            guard reply.bytes.count == 4, reply.bytes[0] == 2, reply.bytes[3] == 0x01 else {
                received.append(reply.bytes)
                continue
            }
            let token = UInt16(reply.bytes[1]) << 8 | UInt16(reply.bytes[2])
            if let sent = unacknowledged.removeValue(forKey: token) {
                framesAcknowledged += sent.frames
                acknowledgementDelays.append(ContinuousClock.now - sent.sentAt)
            }
        }
    }

    /// Pushes for `seconds`, a datagram of eight uplinks every `interval`; how many datagrams
    /// were sent, and how many of them were acknowledged. While the agent runs, the count waits
    /// for the acknowledgements still on their way (a loaded machine delays them, it does not
    /// lose them), up to `settle`.
    @discardableResult
    func stream(for seconds: Double, interval: Duration = .milliseconds(20), settle: Duration = .seconds(20)) async -> (
        sent: Int, acknowledged: Int
    ) {
        let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var sent: [UInt16] = []
        while ContinuousClock.now < end {
            _ = await push()
            sent.append(token)  // the token of the datagram just sent
            try? await Task.sleep(for: interval)
        }
        let deadline = ContinuousClock.now + settle
        while agentIsRunning, sent.contains(where: { unacknowledged[$0] != nil }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
            collectAcknowledgements()
        }
        return (sent.count, sent.filter { unacknowledged[$0] == nil }.count)
    }

    /// The delay within which `fraction` (0.99, say) of the acknowledgements since `start` came.
    func acknowledgementDelay(quantile fraction: Double, since start: Int = 0) -> Duration {
        let delays = acknowledgementDelays.dropFirst(start).sorted()
        guard !delays.isEmpty else { return .zero }
        return delays[min(delays.count - 1, Int(Double(delays.count) * fraction))]
    }

    // MARK: Downlinks

    /// Datagrams the agent sent the forwarder other than PUSH_ACKs, oldest first.
    private(set) var received: [[UInt8]] = []

    /// Sends a PULL_DATA (protocol 2) as the forwarder, and waits for its PULL_ACK.
    func pullData() async -> Bool {
        token &+= 1
        let sent = token
        let high = UInt8(sent >> 8)
        let low = UInt8(sent & 0xFF)
        sendDatagram([2, high, low, 0x02] + Self.forwarderEUI)
        return await eventually(within: 10) { [self] in
            collectAcknowledgements()
            return received.contains { $0 == [2, high, low, 0x04] }
        }
    }

    /// The gateway EUI the rig's forwarder uses.
    static let forwarderEUI: [UInt8] = [0xAA, 0x55, 0x5A, 0, 0, 0, 0, 0x01]

    /// The token and `txpk` of the next PULL_RESP, once one comes (taken off `received`).
    func nextPullResponse(within seconds: Double = 10) async -> (token: [UInt8], txpk: String)? {
        @Sendable func isPullResponse(_ datagram: [UInt8]) -> Bool { datagram.count > 4 && datagram[3] == 0x03 }
        guard
            await eventually(
                within: seconds,
                { [self] in
                    collectAcknowledgements()
                    return received.contains(where: isPullResponse)
                }), let index = received.firstIndex(where: isPullResponse)
        else { return nil }
        let found = received.remove(at: index)
        return (Array(found[1...2]), String(decoding: found[4...], as: UTF8.self))
    }

    /// Sends a TX_ACK for `token`, `error` nil for success, from the forwarder's socket or from
    /// `socket` (someone else on the LAN).
    func txAck(token: [UInt8], error: String?, from socket: UDPSocket? = nil) {
        let body = error.map { #"{"txpk_ack":{"error":"\#($0)"}}"# } ?? #"{"txpk_ack":{"error":"NONE"}}"#
        let datagram = [2] + token + [0x05] + Self.forwarderEUI + Array(body.utf8)
        _ = (socket ?? forwarder).send(datagram, to: SocketAddress("127.0.0.1:\(udpPort)")!)
    }

    /// A `gw.DownlinkFrame` for this gateway as a network server builds one: LoRa, coding rate
    /// 4/5, inverted IQ, one item per entry of `items` (all alike but for nothing), sent at
    /// once unless a delay after the uplink of `context` is given.
    static func downlink(
        _ id: UInt32, frequency: UInt32, sf: UInt32 = 12, bandwidth: UInt32 = 125_000, power: Int32 = 14,
        preamble: UInt32 = 0,
        payload: [UInt8] = [0x60, 0xDA, 0x1B, 0x01, 0x26, 0x20, 0x01, 0x00, 0x01, 0x02, 0x03, 0x04],
        delaySeconds: Int64? = nil, context: Data = Data(), items: Int = 1
    ) -> Gw_DownlinkFrame {
        var lora = Gw_LoraModulationInfo()
        lora.bandwidth = bandwidth
        lora.spreadingFactor = sf
        lora.codeRate = .cr45
        lora.polarizationInversion = true
        lora.preamble = preamble
        var item = Gw_DownlinkFrameItem()
        item.phyPayload = Data(payload)
        item.txInfo.frequency = frequency
        item.txInfo.power = power
        item.txInfo.modulation.lora = lora
        if let delaySeconds {
            item.txInfo.timing.delay.delay = Google_Protobuf_Duration(seconds: delaySeconds)
        } else {
            item.txInfo.timing.immediately = Gw_ImmediatelyTimingInfo()
        }
        item.txInfo.context = context
        var frame = Gw_DownlinkFrame()
        frame.downlinkID = id
        frame.gatewayID = gatewayID
        frame.items = Array(repeating: item, count: items)
        return frame
    }

    /// Publishes `downlink` on `command/down`, as the network server does.
    func publish(_ downlink: Gw_DownlinkFrame) throws {
        let file = directory + "/down-\(UInt32.random(in: 0...UInt32.max)).bin"
        try Data(try downlink.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: file))
        let published = try run(
            "/usr/bin/mosquitto_pub",
            ["-p", "\(broker.port)", "-q", "1", "-t", "\(prefix)/gateway/\(Self.gatewayID)/command/down", "-f", file])
        guard published.status == 0 else { throw BrokerError("mosquitto_pub: \(published.error)") }
    }

    /// A subscriber to the gateway's command topics, as anyone allowed to read them would be.
    func watchCommands() async throws -> EventWatcher {
        try await watch(topic: "\(prefix)/gateway/\(Self.gatewayID)/command/pair", name: "commands")
    }

    /// A subscriber to one of the gateway's event topics (`ack`, say), writing down every
    /// message it is given; subscribed when this returns.
    func watch(event: String) async throws -> EventWatcher {
        try await watch(topic: "\(prefix)/gateway/\(Self.gatewayID)/event/\(event)", name: event)
    }

    private func watch(topic: String, name event: String) async throws -> EventWatcher {
        let file = directory + "/watch-\(event)-\(UInt32.random(in: 0...UInt32.max)).hex"
        let pid = try spawn(
            "/usr/bin/mosquitto_sub", ["-p", "\(broker.port)", "-q", "1", "-t", topic, "-F", "%x"], logFile: file)
        let watcher = EventWatcher(pid: pid, file: file)
        // Subscribed once a probe of its own comes back.
        let probe = Array("probe".utf8)
        guard
            await eventually(
                within: 15,
                {
                    _ = try? run("/usr/bin/mosquitto_pub", ["-p", "\(self.broker.port)", "-t", topic, "-m", "probe"])
                    return await eventually(within: 0.3) { watcher.messages.contains(probe) }
                })
        else { throw BrokerError("the watcher of \(topic) did not subscribe") }
        return watcher
    }

    // MARK: The ledger

    /// Every uplink the collector was given, by the store's sequence number: owner and credits.
    func published() -> [Int64: (owner: String, credits: Int64)] {
        let text = (try? String(contentsOfFile: collectorFile, encoding: .utf8)) ?? ""
        var result: [Int64: (String, Int64)] = [:]
        for line in text.split(separator: "\n") {
            guard let bytes = Hex.decode(String(line)), let uplink = try? Gw_UplinkFrame(serializedBytes: bytes) else {
                continue
            }
            let metadata = uplink.rxInfo.metadata
            guard let seq = metadata["seq"].flatMap({ Int64($0) }), let owner = metadata["owner"],
                let credits = metadata["dc"].flatMap({ Int64($0) })
            else { continue }
            result[seq] = (owner, credits)
        }
        return result
    }

    /// Every `gw.UplinkFrame` the collector was given, charged or not.
    func publishedUplinks() -> [Gw_UplinkFrame] {
        let text = (try? String(contentsOfFile: collectorFile, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            Hex.decode(String(line)).flatMap { try? Gw_UplinkFrame(serializedBytes: $0) }
        }
    }

    /// The outbox's rows by kind, read from the store beside the agent.
    func outboxKinds() async throws -> [OutboxMessage.Kind: Int] {
        let store = try Store(readingFrom: dataDirectory + "/hotspotd.db")
        var counts: [OutboxMessage.Kind: Int] = [:]
        for message in try await store.outbox(limit: 1_000_000) { counts[message.kind, default: 0] += 1 }
        return counts
    }

    /// Every uplink the store has debited, by sequence number, and each owner's balance.
    func debited() async throws -> (charges: [Int64: (owner: String, credits: Int64)], balances: [String: Int64]) {
        let store = try Store(readingFrom: dataDirectory + "/hotspotd.db")
        var charges: [Int64: (String, Int64)] = [:]
        var balances: [String: Int64] = [:]
        for owner in granted.keys {
            for charge in try await store.charges(owner: owner) { charges[charge.seq] = (owner, charge.credits) }
            balances[owner] = try await store.account(owner: owner)?.balance
        }
        return (charges, balances)
    }

    /// What is wrong with the ledger, or nil: every debited uplink must have been published,
    /// and every balance must be the credits granted less the credits of the published uplinks.
    func ledgerProblem() async -> String? {
        let published = published()
        let store: (charges: [Int64: (owner: String, credits: Int64)], balances: [String: Int64])
        do {
            store = try await debited()
        } catch {
            return "cannot read the store: \(error)"
        }
        let unpublished = store.charges.keys.filter { published[$0] == nil }.sorted()
        if !unpublished.isEmpty {
            return
                """
                \(unpublished.count) of \(store.charges.count) debited uplinks were not published (seq \
                \(unpublished.prefix(10)))
                """
        }
        for (owner, granted) in granted {
            let spent = published.values.filter { $0.owner == owner }.reduce(Int64(0)) { $0 + $1.credits }
            if store.balances[owner] != granted - spent {
                return
                    """
                    \(owner)'s balance is \(store.balances[owner].map(String.init) ?? "missing"), but \(granted) \
                    were granted and the published uplinks carry \(spent)
                    """
            }
        }
        return nil
    }

    // MARK: Helpers

    static func freeUDPPort() throws -> Int {
        let socket = try UDPSocket(binding: SocketAddress("127.0.0.1:0")!)
        return Int(socket.localAddress.port)
    }
}

/// Stands in for systemd: reads the notification socket all the time, as systemd does, and
/// keeps what arrives.
final class ServiceManager: Sendable {
    private final class Shared: Sendable {
        let messages = Mutex<[String]>([])
        let stopped = Mutex(false)
    }

    private let sink: DatagramSink
    private let shared = Shared()

    var path: String { sink.path }
    var messages: [String] { shared.messages.withLock { $0 } }

    init() {
        let sink = DatagramSink()
        self.sink = sink
        let shared = shared
        Thread.detachNewThread {
            while !shared.stopped.withLock({ $0 }) {
                guard let datagram = sink.receive(timeoutMilliseconds: 100) else { continue }
                shared.messages.withLock { $0.append(String(decoding: datagram, as: UTF8.self)) }
            }
        }
    }

    deinit {
        shared.stopped.withLock { $0 = true }
    }
}

/// The last lines of a log file, for failure messages.
func tail(of path: String, lines: Int = 15) -> String {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
}

/// Every message of one topic, as mosquitto_sub wrote them down; the subscriber ends with it.
final class EventWatcher: Sendable {
    let pid: pid_t
    let file: String

    init(pid: pid_t, file: String) {
        self.pid = pid
        self.file = file
    }

    deinit {
        kill(pid, SIGKILL)
        _ = waitForExit(pid, seconds: 5)
    }

    var messages: [[UInt8]] {
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { Hex.decode(String($0)) }
    }
}
