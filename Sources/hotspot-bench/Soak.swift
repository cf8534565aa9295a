import ArgumentParser
import Foundation
import LoRaPHY
import LoRaWAN
import TestSupport
import Wire

#if canImport(Glibc)
    import Glibc
#endif

/// A long run at a steady rate above anything a hotspot can receive: the agent as packaged
/// (release, static runtime) on a concentrator board, this process its packet forwarder, a
/// mosquitto of its own with a network server's subscriber on `event/up`, and the demo's MQTT
/// settings (JSON, stats every 10 s). Every minute: the agent's memory, CPU and outbox depth.
struct Soak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Run hotspotd for a long time at a multiple of an 8-channel concentrator's physical maximum.",
        discussion: """
            The physical maximum: 8 channels, each busy back to back with the shortest LoRaWAN uplink \
            (13 bytes, SF7 at 125 kHz, 46 ms on air): about 173 frames/s. The soak sends `--factor` times that, \
            as PUSH_DATA datagrams of 8 rxpk every 100 ms, from 1,000 paired sensors, with payloads of 12 to 60 bytes.
            """
    )

    @Option(help: "How long to run, in minutes.")
    var minutes = 30.0

    @Option(help: "The multiple of the physical maximum to send.")
    var factor = 10.0

    @Option(help: "Where to write the per-minute figures as JSON.")
    var json = "soak-results.json"

    @Option(help: "The hotspotd binary (default: the release build with a static Swift runtime, in .build-release).")
    var hotspotd: String?

    struct Sample: Codable {
        var minute: Int
        var framesSent: Int
        var datagramsUnacknowledged: Int
        var charged: Int
        var outboxDepth: Int
        var rssMegabytes: Double
        var anonymousMegabytes: Double
        var cpuPercent: Double
    }

    /// Frames per second an 8-channel concentrator can receive at most.
    static var physicalMaximum: Double {
        let shortest = LoRaAirtime(
            modulation: LoRaModulation(spreadingFactor: .sf7, bandwidth: .khz125), payloadLength: 13)
        return 8 / (shortest.milliseconds / 1000)
    }

    mutating func run() async throws {
        let binary = try hotspotd ?? Benchmark.builtHotspotd()
        let rate = Self.physicalMaximum * factor
        say("hotspot-bench soak: \(Machine.current().summary)")
        say("hotspotd: \(binary)")
        say(
            String(
                format: "physical maximum %.0f frames/s; sending %.0f frames/s (×%.0f) for %.0f minutes",
                Self.physicalMaximum, rate, factor, minutes))

        let broker = try Broker()
        // The network server: takes every uplink (QoS 1), as ChirpStack's gateway bridge would.
        let subscriber = try spawn(
            "/usr/bin/mosquitto_sub", ["-p", "\(broker.port)", "-q", "1", "-t", "+/gateway/+/event/up"])
        defer {
            kill(subscriber, SIGTERM)
            _ = waitForExit(subscriber, seconds: 5)
        }
        let sensors = Workload(frames: 0, sensors: 1_000)
        let udpPort = try freeUDPPort()
        let agent = try await AgentProcess(
            binary: binary, board: "rak2287", brokerPort: broker.port, udpPort: udpPort, provision: sensors,
            maximumInFlight: 100,
            json: true, statsInterval: "10s", logLevel: "notice"
        )
        defer { agent.remove() }
        let forwarder = try PacedForwarder(port: udpPort, sensors: sensors.sensors)

        say()
        say("minute  frames sent  unacked  charged     outbox  RSS MB  anon MB  CPU %")
        var samples: [Sample] = []
        let start = now()
        var cpuBefore = agent.cpuMicroseconds
        var minuteStart = start
        func takeSample() {
            let cpu = agent.cpuMicroseconds
            let (charged, outbox) = agent.progress()
            let sample = Sample(
                minute: samples.count + 1, framesSent: forwarder.framesSent,
                datagramsUnacknowledged: forwarder.unacknowledged,
                charged: charged, outboxDepth: outbox,
                rssMegabytes: Double(statusKilobytes("VmRSS", pid: String(agent.pid)) ?? 0) / 1024,
                anonymousMegabytes: Double(statusKilobytes("RssAnon", pid: String(agent.pid)) ?? 0) / 1024,
                cpuPercent: Double(cpu - cpuBefore) / ((now() - minuteStart) * 1e6) * 100
            )
            samples.append(sample)
            say(
                String(
                    format: "%6d  %11d  %7d  %9d  %9d  %6.1f  %7.1f  %5.1f", sample.minute, sample.framesSent,
                    sample.datagramsUnacknowledged, sample.charged, sample.outboxDepth, sample.rssMegabytes,
                    sample.anonymousMegabytes, sample.cpuPercent))
            cpuBefore = cpu
            minuteStart = now()
        }
        let tick = 0.1
        var due = start
        var carry = 0.0
        while now() - start < minutes * 60 {
            // This tick's frames, then the acknowledgements until the next one.
            carry += rate * tick
            let count = Int(carry)
            carry -= Double(count)
            forwarder.send(frames: count)
            due += tick
            forwarder.collectAcknowledgements(until: due)
            if now() - minuteStart >= 60 {
                takeSample()
            }
        }
        // The last minute, unless it had barely begun.
        if now() - minuteStart >= 30 { takeSample() }

        let sent = forwarder.framesSent
        let elapsed = now() - start
        let drained = await agent.waitUntilDelivered(charged: 1, seconds: 120)
        let (charged, outbox) = agent.progress()
        let peak = agent.peakResidentMegabytes
        let status = agent.stop()
        // What the agent itself said (notices and worse), kept beside the figures.
        let log = (try? String(contentsOf: agent.directory.appendingPathComponent("agent.log"), encoding: .utf8)) ?? ""
        try? log.write(toFile: "soak-agent.log", atomically: true, encoding: .utf8)
        var said: [String: Int] = [:]
        for line in log.split(separator: "\n") {
            // "… warning hotspotd: GATEWAY_ID=… [Agent] message": the level and the message.
            let words = line.split(separator: " ", maxSplits: 1)
            guard words.count == 2, let bracket = line.range(of: "] ") else { continue }
            let level = words[1].prefix { $0 != " " }
            said["\(level): \(line[bracket.upperBound...].prefix(90))", default: 0] += 1
        }
        say()
        say(
            String(
                format: "%d frames sent in %.0f s (%.0f/s); %d datagrams of %d not acknowledged", sent, elapsed,
                Double(sent) / elapsed, forwarder.unacknowledged, forwarder.datagramsSent))
        say(
            """
            \(charged) uplinks charged; outbox \(drained ? "drained" : "NOT drained") (\(outbox) left) within 2 \
            minutes of the end; exit status \(status.map(String.init) ?? "killed")
            """
        )
        if let first = samples.first, let last = samples.last {
            let settled = samples.count > 5 ? samples[4] : first
            say(
                String(
                    format:
                        """
                        RSS: %.1f MB after a minute, %.1f MB at the end, peak %.1f MB; anonymous %.1f → %.1f MB \
                        (from minute %d: %+.1f MB)
                        """,
                    first.rssMegabytes, last.rssMegabytes, peak, first.anonymousMegabytes, last.anonymousMegabytes,
                    settled.minute, last.anonymousMegabytes - settled.anonymousMegabytes))
            say(
                String(
                    format: "outbox depth: at most %d; CPU %.0f%% of one core on average",
                    samples.map(\.outboxDepth).max() ?? 0,
                    samples.map(\.cpuPercent).reduce(0, +) / Double(samples.count)))
        }
        say(said.isEmpty ? "the agent logged nothing at notice or above" : "the agent logged (soak-agent.log):")
        for (message, count) in said.sorted(by: { $0.value > $1.value }).prefix(12) {
            say("  \(count) × \(message)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(samples).write(to: URL(fileURLWithPath: json))
        say("per-minute figures written to \(json)")
    }
}

/// The packet forwarder of the soak: uplinks of the paired sensors, each with the next frame
/// counter, as PUSH_DATA datagrams of 8 rxpk; PUSH_ACKs counted, never waited for.
final class PacedForwarder {
    let fd: Int32
    let sensors: [Workload.Sensor]
    private var fCnts: [UInt32]
    private var random = SplitMix64(seed: 0x50AC)
    private var outstanding: [UInt16: Double] = [:]
    private var token: UInt16 = 0
    private(set) var framesSent = 0
    private(set) var datagramsSent = 0
    private(set) var unacknowledged = 0

    init(port: Int, sensors: [Workload.Sensor]) throws {
        self.sensors = sensors
        fCnts = Array(repeating: 0, count: sensors.count)
        fd = try connectedUDPSocket(port: port)
    }

    deinit { close(fd) }

    func send(frames count: Int) {
        var remaining = count
        while remaining > 0 {
            let batch = min(8, remaining)
            remaining -= batch
            var rxpk: [String] = []
            for _ in 0..<batch {
                let index = Int(random.next() % UInt64(sensors.count))
                let sensor = sensors[index]
                let payload = (0..<(12 + Int(random.next() % 49))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                guard
                    let frame = try? LoRaWANCrypto.encodeDataFrame(
                        devAddr: sensor.devAddr, fCnt: fCnts[index], fPort: 2, payload: payload,
                        nwkSKey: sensor.nwkSKey, appSKey: sensor.appSKey)
                else { continue }
                fCnts[index] += 1
                rxpk.append(Workload.rxpk(frame, timestamp: UInt32(truncatingIfNeeded: framesSent &* 1000)))
                framesSent += 1
            }
            token &+= 1
            let datagram =
                [2, UInt8(token >> 8), UInt8(token & 0xFF), 0x00] + GWMPSender.gatewayEUI
                + Array(#"{"rxpk":[\#(rxpk.joined(separator: ","))]}"#.utf8)
            _ = datagram.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            outstanding[token] = now()
            datagramsSent += 1
        }
    }

    /// Reads PUSH_ACKs until `deadline`; a datagram unacknowledged after a second is counted.
    func collectAcknowledgements(until deadline: Double) {
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let left = deadline - now()
            guard left > 0 else { break }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(max(1, left * 1000))) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count >= 4 && buffer[3] == 0x01 {
                outstanding[UInt16(buffer[1]) << 8 | UInt16(buffer[2])] = nil
            }
        }
        let late = now() - 1
        for (token, sentAt) in outstanding where sentAt < late {
            outstanding[token] = nil
            unacknowledged += 1
        }
    }
}
