import ArgumentParser
import Foundation
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

@main
struct HotspotBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hotspot-bench",
        abstract: "Measure hotspotd (the default: `run`), or soak it under load for a long time (`soak`).",
        subcommands: [Benchmark.self, Paced.self, Soak.self],
        defaultSubcommand: Benchmark.self
    )
}

struct Benchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Measure hotspotd against libmosquitto's floor, on a mosquitto of its own.",
        discussion: """
            The floor: libmosquitto publishing the agent's messages (QoS 1, the same sizes and in-flight bound) \
            from a tight loop.
            The pipeline: LoRaWAN uplinks of paired sensors replayed into the mock board's air, \
            through the SX1276 driver, \
            metering, the outbox and MQTT, until the broker acknowledged every one.
            The concentrator path: the same uplinks as GWMP PUSH_DATA datagrams into the semtech_udp backend.
            The drain: uplinks accepted while the broker is down, then the broker started.
            The paced points: GWMP datagrams on a hotspot's schedule (250 frames/s, 1 rxpk a datagram; \
            4,000 frames/s, 8 a datagram) into hotspotd and into the C bridge floor (bench/c-bridge.c: \
            PUSH_ACK, a SQLite WAL outbox, QoS 1 with libmosquitto, delete on PUBACK); CPU and bytes \
            written to storage per frame.
            Start-up: exec to READY=1. The agent is the built hotspotd binary, in a process of its own.
            """
    )

    @Option(help: "Uplinks in the floor, pipeline and concentrator runs.")
    var frames = 20_000

    @Option(help: "Uplinks accepted during the outage of the drain run.")
    var drain = 100_000

    @Option(help: "Runs of the floor, pipeline and concentrator paths; the median of each is reported.")
    var runs = 3

    @Option(help: "Messages in flight (mqtt.max_inflight), for the agent and the floor.")
    var inFlight = 100

    @Option(help: "Where to write the figures as JSON.")
    var json = "bench-results.json"

    @Option(
        help:
            """
            The hotspotd binary (default: a release build with the Swift runtime linked statically, as packaged, \
            built in .build-release).
            """
    )
    var hotspotd: String?

    mutating func run() async throws {
        let binary = try hotspotd ?? Self.builtHotspotd()
        let machine = Machine.current()
        say("hotspot-bench: \(machine.summary)")
        say("hotspotd: \(binary)")
        let broker = try Broker()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("hotspot-bench-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }

        let workload = Workload(frames: frames)
        let replay = work.appendingPathComponent("frames.bin").path
        try workload.writeReplayFile(replay)

        let floorPayloads = workload.publishedPayloads(gatewayID: "0123456789abcdef")
        var floors: [Figures] = []
        var pipelines: [Figures] = []
        var concentrators: [Figures] = []
        for run in 1...max(runs, 1) {
            say("run \(run) of \(runs): floor, \(frames) QoS 1 messages …")
            guard
                let floor = FloorPublisher(maximumInFlight: inFlight).run(
                    host: "127.0.0.1", port: broker.port, topic: "eu868/gateway/0123456789abcdef/event/up",
                    payloads: floorPayloads, maximumInFlight: inFlight
                )
            else { throw BenchError("the floor could not connect to mosquitto on port \(broker.port)") }
            floors.append(floor)
            say("run \(run) of \(runs): pipeline, \(frames) uplinks through the mock SX1276 …")
            pipelines.append(
                try await measurePipeline(binary: binary, brokerPort: broker.port, workload: workload, replay: replay))
            say("run \(run) of \(runs): concentrator, \(frames) uplinks as GWMP datagrams …")
            concentrators.append(
                try await measureConcentrator(binary: binary, brokerPort: broker.port, workload: workload))
        }
        let floor = Self.median(floors)
        let pipeline = Self.median(pipelines)
        let concentrator = Self.median(concentrators)

        say("drain: \(drain) uplinks accepted with the broker down, then delivered …")
        let drainWorkload = Workload(frames: drain)
        let drainReplay = work.appendingPathComponent("drain.bin").path
        try drainWorkload.writeReplayFile(drainReplay)
        let (drained, accepted) = try await measureDrain(binary: binary, workload: drainWorkload, replay: drainReplay)

        say("start-up: exec to READY=1 …")
        let startup = try await measureStartup(binary: binary, brokerPort: broker.port)

        let paced = try await measureOperatingPoints(
            OperatingPoint.hotspot, binary: binary, brokerPort: broker.port, inFlight: inFlight, work: work)

        let report = Report(
            machine: machine, date: ISO8601DateFormatter().string(from: Date()), inFlight: inFlight,
            floor: floor, pipeline: pipeline, concentrator: concentrator, drainAccept: accepted, drain: drained,
            startup: startup,
            paced: paced
        )
        say()
        say(report.table())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        say("figures written to \(json)")
    }

    /// The run with the median rate.
    static func median(_ runs: [Figures]) -> Figures {
        var median = runs.sorted { $0.perSecond < $1.perSecond }[runs.count / 2]
        if runs.count > 1 {
            median.note = [
                median.note,
                "median of \(runs.count) runs: "
                    + runs.map { String(format: "%.0f", $0.perSecond) }.joined(separator: ", ") + " msg/s",
            ]
            .compactMap { $0 }.joined(separator: "; ")
        }
        return median
    }

    /// Pipeline: the replay starts as the agent starts; timed from READY=1 to the last PUBACK.
    func measurePipeline(binary: String, brokerPort: Int, workload: Workload, replay: String) async throws -> Figures {
        let agent = try await AgentProcess(
            binary: binary, board: "mock", brokerPort: brokerPort, replay: replay, provision: workload,
            maximumInFlight: inFlight)
        defer { agent.remove() }
        let cpuAtReady = agent.cpuMicroseconds
        guard await agent.waitUntilDelivered(charged: workload.frames.count, seconds: 900) else {
            agent.stop()
            throw BenchError("pipeline: not every uplink was delivered: \(agent.progress())")
        }
        let seconds = now() - agent.readyAt
        let figures = Figures(
            name: "pipeline", messages: workload.frames.count, seconds: seconds,
            cpuMicroseconds: agent.cpuMicroseconds - cpuAtReady, peakRSSMegabytes: agent.peakResidentMegabytes,
            peakAnonymousMegabytes: agent.peakAnonymousMegabytes
        )
        agent.stop()
        return figures
    }

    /// Concentrator path: this process is the packet forwarder; timed from the first datagram.
    func measureConcentrator(binary: String, brokerPort: Int, workload: Workload) async throws -> Figures {
        let udpPort = try freeUDPPort()
        let agent = try await AgentProcess(
            binary: binary, board: "rak2287", brokerPort: brokerPort, udpPort: udpPort, provision: workload,
            maximumInFlight: inFlight)
        defer { agent.remove() }
        let sender = GWMPSender(port: udpPort, workload: workload, batch: 8, window: 16)
        let datagrams = sender.datagrams()
        let cpuBefore = agent.cpuMicroseconds
        let start = now()
        let resent = try sender.run(datagrams) { agent.progress().charged }
        guard await agent.waitUntilDelivered(charged: workload.frames.count, seconds: 900) else {
            agent.stop()
            throw BenchError("concentrator: not every uplink was delivered: \(agent.progress())")
        }
        let figures = Figures(
            name: "concentrator", messages: workload.frames.count, seconds: now() - start,
            cpuMicroseconds: agent.cpuMicroseconds - cpuBefore, peakRSSMegabytes: agent.peakResidentMegabytes,
            peakAnonymousMegabytes: agent.peakAnonymousMegabytes,
            note: resent > 0 ? "\(resent) datagrams sent again" : nil
        )
        agent.stop()
        return figures
    }

    /// Drain: the broker is down while the replay is accepted; then it starts, and the drain is
    /// timed from its start to the last PUBACK. Peak RSS covers the outage and the drain.
    func measureDrain(binary: String, workload: Workload, replay: String) async throws -> (
        drain: Figures, accepted: Figures
    ) {
        let port = try Broker.freePort()
        let agent = try await AgentProcess(
            binary: binary, board: "mock", brokerPort: port, replay: replay, provision: workload,
            maximumInFlight: inFlight)
        defer { agent.remove() }
        let count = workload.frames.count
        guard await waitUntil(seconds: 1800, { agent.progress().charged >= count }) else {
            agent.stop()
            throw BenchError("drain: not every uplink was accepted: \(agent.progress())")
        }
        let accepted = Figures(
            name: "accept (broker down)", messages: count, seconds: now() - agent.readyAt,
            cpuMicroseconds: agent.cpuMicroseconds, peakRSSMegabytes: agent.peakResidentMegabytes,
            peakAnonymousMegabytes: agent.peakAnonymousMegabytes
        )
        let rssDuringOutage = agent.peakResidentMegabytes
        let cpuBefore = agent.cpuMicroseconds
        let broker = try Broker(port: port)
        let brokerStarted = now()
        // The agent reconnects on libmosquitto's backoff (1 s, doubling, at most 30 s): the
        // drain is timed from the first acknowledged message, the wait before it reported apart.
        guard await waitUntil(seconds: 120, { agent.progress().outbox < count }) else {
            agent.stop()
            throw BenchError("drain: the agent did not reconnect within 2 minutes")
        }
        let start = now()
        guard await agent.waitUntilDelivered(charged: count, seconds: 1800) else {
            agent.stop()
            throw BenchError("drain: the outbox did not drain: \(agent.progress())")
        }
        let figures = Figures(
            name: "drain", messages: count, seconds: now() - start,
            cpuMicroseconds: agent.cpuMicroseconds - cpuBefore, peakRSSMegabytes: agent.peakResidentMegabytes,
            peakAnonymousMegabytes: agent.peakAnonymousMegabytes,
            note: String(
                format:
                    """
                    first message delivered %.1f s after the broker started (reconnect backoff); peak RSS %.1f MB \
                    during the outage
                    """,
                start - brokerStarted, rssDuringOutage)
        )
        agent.stop()
        broker.stop()
        return (figures, accepted)
    }

    /// Start-up: exec to READY=1, with a store and key that exist (a restart), five times.
    func measureStartup(binary: String, brokerPort: Int) async throws -> Startup {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hotspot-bench-start-\(getpid())")
        defer { try? FileManager.default.removeItem(at: directory) }
        var times: [Double] = []
        var rss: [Double] = []
        for run in 0..<6 {
            let agent = try await AgentProcess(
                binary: binary, board: "mock", brokerPort: brokerPort, provision: nil, maximumInFlight: inFlight,
                directory: directory)
            // The first run creates the key and the store; the next five are restarts.
            if run > 0 {
                times.append((agent.readyAt - agent.startedAt) * 1000)
                rss.append(agent.peakResidentMegabytes)
            }
            agent.stop()
        }
        times.sort()
        return Startup(
            runs: times.count, medianMilliseconds: times[times.count / 2], maximumMilliseconds: times.last ?? 0,
            peakRSSMegabytes: rss.max() ?? 0)
    }

    /// hotspotd as the Debian package ships it: a release build with the Swift runtime linked
    /// statically, in `.build-release` (as `scripts/package-deb` builds it); brought up to date
    /// first.
    static func builtHotspotd() throws -> String {
        say("building hotspotd (release, static Swift runtime, in .build-release) …")
        let arguments = [
            "swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "hotspotd", "--package-path",
            repositoryRoot, "--scratch-path", repositoryRoot + "/.build-release",
        ]
        let build = try TestSupport.run("/usr/bin/env", arguments)
        guard build.status == 0 else { throw BenchError("could not build hotspotd: \(build.output)\(build.error)") }
        let path =
            try TestSupport.run("/usr/bin/env", arguments + ["--show-bin-path"]).output.trimmingCharacters(
                in: .whitespacesAndNewlines) + "/hotspotd"
        guard FileManager.default.isExecutableFile(atPath: path) else { throw BenchError("no hotspotd at \(path)") }
        return path
    }
}
