import ArgumentParser
import CSQLite
import Foundation
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// An operating point of a hotspot's concentrator: frames a second, `rxpk` a datagram, for
/// how long.
struct OperatingPoint: Codable, CustomStringConvertible {
    var framesPerSecond: Int
    var perDatagram: Int
    var seconds: Int

    var frames: Int { framesPerSecond * seconds }
    var description: String { "\(framesPerSecond) frames/s, \(perDatagram) rxpk a datagram" }

    static let hotspot = [
        OperatingPoint(framesPerSecond: 250, perDatagram: 1, seconds: 20),
        OperatingPoint(framesPerSecond: 4000, perDatagram: 8, seconds: 10),
    ]
}

/// What a process paid for the frames of one paced run.
struct PacedFigures: Codable {
    var name: String
    var point: OperatingPoint
    var frames: Int
    /// CPU time (user + system) from the first datagram until every frame was delivered and
    /// its row deleted, per frame.
    var cpuMicrosecondsPerFrame: Double
    /// `write_bytes` of /proc/PID/io over the same span (bytes the process sent towards the
    /// disk: pages it dirtied), per frame.
    var bytesWrittenPerFrame: Double
    /// CPU as a share of one core while frames came.
    var coreShare: Double
    var peakRSSMegabytes: Double
    var peakAnonymousMegabytes: Double
}

/// `write_bytes` of /proc/PID/io.
func bytesWritten(_ pid: pid_t) -> Int64 {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("write_bytes:") {
        return Int64(line.dropFirst("write_bytes:".count).trimmingCharacters(in: .whitespaces)) ?? 0
    }
    return 0
}

/// Sends the workload's frames as GWMP PUSH_DATA datagrams of `point.perDatagram` rxpk on a
/// fixed schedule (`point.framesPerSecond`), as a concentrator delivers them, whatever the
/// receiver does; PUSH_ACKs are read and counted. Returns the datagrams acknowledged.
func sendPaced(port: Int, workload: Workload, point: OperatingPoint) throws -> Int {
    let sender = GWMPSender(port: port, workload: workload, batch: point.perDatagram, window: 0)
    let datagrams = sender.datagrams()
    let fd = try connectedUDPSocket(port: port)
    defer { close(fd) }
    let interval = Double(point.perDatagram) / Double(point.framesPerSecond)
    let start = now()
    var acknowledged = 0
    var buffer = [UInt8](repeating: 0, count: 64)
    for (index, datagram) in datagrams.enumerated() {
        let due = start + Double(index) * interval
        while true {
            let wait = due - now()
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, Int32(max(0, wait * 1000))) > 0 {
                if recv(fd, &buffer, buffer.count, 0) >= 4, buffer[3] == 0x01 { acknowledged += 1 }
                continue
            }
            if wait <= 0 { break }
        }
        _ = datagram.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    }
    let end = now() + 1
    while now() < end {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&descriptor, 1, 100) > 0, recv(fd, &buffer, buffer.count, 0) >= 4, buffer[3] == 0x01 {
            acknowledged += 1
        }
    }
    return acknowledged
}

/// The C bridge (bench/c-bridge.c), compiled for this run.
final class CBridgeProcess {
    let pid: pid_t
    let directory: URL
    private var probe: OpaquePointer?

    static func build(into directory: URL) throws -> String {
        let binary = directory.appendingPathComponent("c-bridge").path
        let built = try run(
            "/usr/bin/cc",
            [
                "-O2", "-o", binary, repositoryRoot + "/bench/c-bridge.c", "-lsqlite3", "-lmosquitto", "-lpthread",
            ])
        guard built.status == 0 else { throw BenchError("building the C bridge failed: \(built.error)") }
        return binary
    }

    init(binary: String, udpPort: Int, brokerPort: Int) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspot-bench-bridge-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        pid = try spawn(
            binary,
            ["\(udpPort)", "\(brokerPort)", directory.path + "/outbox.db", "eu868/gateway/0123456789abcdef/event/up"],
            logFile: directory.path + "/bridge.log")
        // Ready once its database exists and the port is bound.
        let wal = directory.path + "/outbox.db-wal"
        _ = await waitUntil(seconds: 10) { FileManager.default.fileExists(atPath: wal) }
    }

    /// Frames stored since the start, and rows waiting for their PUBACK.
    func progress() -> (stored: Int, outbox: Int) {
        if probe == nil {
            var db: OpaquePointer?
            guard sqlite3_open_v2(directory.path + "/outbox.db", &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else {
                return (0, -1)
            }
            sqlite3_busy_timeout(db, 1000)
            probe = db
        }
        func integer(_ sql: String) -> Int { Int(queryInteger(probe, sql)) }
        return (
            integer("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'outbox'"),
            integer("SELECT COUNT(*) FROM outbox")
        )
    }

    func stop() {
        if let probe { sqlite3_close_v2(probe) }
        probe = nil
        kill(pid, SIGTERM)
        if waitForExit(pid, seconds: 10) == nil {
            kill(pid, SIGKILL)
            _ = waitForExit(pid, seconds: 5)
        }
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Measures one process over a paced run: CPU and bytes written from just before the first
/// datagram until `delivered()` (polled only once the frames are sent), plus a second for the
/// last acknowledgements' deletes.
func measurePaced(
    name: String, pid: pid_t, port: Int, workload: Workload, point: OperatingPoint,
    delivered: () async -> Bool, anonymous: () -> Double
) async throws -> PacedFigures {
    let cpuBefore = childCPUMicroseconds(pid) ?? 0
    let writtenBefore = bytesWritten(pid)
    let start = now()
    _ = try sendPaced(port: port, workload: workload, point: point)
    let sent = now()
    guard await waitUntil(seconds: 300, delivered) else {
        throw BenchError("\(name): not every frame was delivered at \(point)")
    }
    try await Task.sleep(for: .seconds(1))
    let cpu = Double((childCPUMicroseconds(pid) ?? 0) - cpuBefore)
    let written = Double(bytesWritten(pid) - writtenBefore)
    let frames = Double(point.frames)
    return PacedFigures(
        name: name, point: point, frames: point.frames, cpuMicrosecondsPerFrame: cpu / frames,
        bytesWrittenPerFrame: written / frames,
        coreShare: cpu / 1e6 / max(sent - start, 0.001),
        peakRSSMegabytes: Double(statusKilobytes("VmHWM", pid: String(pid)) ?? 0) / 1024,
        peakAnonymousMegabytes: anonymous())
}

/// hotspotd and the C bridge at one operating point.
struct PacedComparison: Codable {
    var hotspotd: PacedFigures
    var bridge: PacedFigures

    var cpuRatio: Double { hotspotd.cpuMicrosecondsPerFrame / bridge.cpuMicrosecondsPerFrame }
    var writtenRatio: Double { hotspotd.bytesWrittenPerFrame / max(bridge.bytesWrittenPerFrame, 1) }
}

/// hotspotd and the C bridge at each operating point, side by side.
func measureOperatingPoints(_ points: [OperatingPoint], binary: String, brokerPort: Int, inFlight: Int, work: URL)
    async throws
    -> [PacedComparison]
{
    let bridgeBinary = try CBridgeProcess.build(into: work)
    var results: [PacedComparison] = []
    for point in points {
        let workload = Workload(frames: point.frames)
        say("paced: \(point), \(point.frames) frames — C bridge …")
        let bridgePort = try freeUDPPort()
        let bridge = try await CBridgeProcess(binary: bridgeBinary, udpPort: bridgePort, brokerPort: brokerPort)
        let bridgeFigures = try await measurePaced(
            name: "C bridge", pid: bridge.pid, port: bridgePort, workload: workload, point: point,
            delivered: {
                let (stored, outbox) = bridge.progress()
                return stored >= point.frames && outbox == 0
            },
            anonymous: { Double(statusKilobytes("RssAnon", pid: String(bridge.pid)) ?? 0) / 1024 })
        bridge.stop()

        say("paced: \(point), \(point.frames) frames — hotspotd …")
        let udpPort = try freeUDPPort()
        let agent = try await AgentProcess(
            binary: binary, board: "rak2287", brokerPort: brokerPort, udpPort: udpPort, provision: workload,
            maximumInFlight: inFlight)
        defer { agent.remove() }
        let agentFigures = try await measurePaced(
            name: "hotspotd", pid: agent.pid, port: udpPort, workload: workload, point: point,
            delivered: {
                let (charged, outbox) = agent.progress()
                return charged >= point.frames && outbox == 0
            },
            anonymous: { agent.peakAnonymousMegabytes })
        agent.stop()
        results.append(PacedComparison(hotspotd: agentFigures, bridge: bridgeFigures))
    }
    return results
}

func pacedTable(_ results: [PacedComparison]) -> String {
    func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
    func padLeft(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
    var lines = [
        pad("operating point", 34) + pad("process", 10) + padLeft("CPU µs/frame", 13) + padLeft("core", 7)
            + padLeft("written/frame", 15)
            + padLeft("peak RSS", 10) + padLeft("anon", 9)
    ]
    for comparison in results {
        let agent = comparison.hotspotd
        let bridge = comparison.bridge
        for figures in [bridge, agent] {
            lines.append(
                pad("\(figures.point) ", 34) + pad(figures.name, 10)
                    + padLeft(String(format: "%.1f", figures.cpuMicrosecondsPerFrame), 13)
                    + padLeft(String(format: "%.1f %%", figures.coreShare * 100), 7)
                    + padLeft(String(format: "%.0f B", figures.bytesWrittenPerFrame), 15)
                    + padLeft(String(format: "%.1f MB", figures.peakRSSMegabytes), 10)
                    + padLeft(String(format: "%.1f MB", figures.peakAnonymousMegabytes), 9))
        }
        lines.append(
            pad("", 34) + "hotspotd ÷ C bridge: CPU "
                + String(format: "%.2f ×", agent.cpuMicrosecondsPerFrame / bridge.cpuMicrosecondsPerFrame)
                + " (target ≤ 1.5 ×), written "
                + String(format: "%.2f ×", agent.bytesWrittenPerFrame / max(bridge.bytesWrittenPerFrame, 1))
                + " (target ≤ 1 ×)")
    }
    return lines.joined(separator: "\n")
}

/// `hotspot-bench paced`: only the paced operating points, against the C bridge.
struct Paced: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            """
            hotspotd and the C bridge floor at a hotspot's paced operating points (250 frames/s, 1 rxpk a datagram;\
             4,000 frames/s, 8 a datagram).
            """
    )

    @Option(help: "Seconds of each operating point.")
    var seconds: Int?

    @Option(help: "Messages in flight (mqtt.max_inflight).")
    var inFlight = 100

    @Option(help: "The hotspotd binary (default: the release build in .build-release).")
    var hotspotd: String?

    mutating func run() async throws {
        let binary = try hotspotd ?? Benchmark.builtHotspotd()
        say("hotspot-bench: \(Machine.current().summary)")
        let broker = try Broker()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("hotspot-bench-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let points = OperatingPoint.hotspot.map { point in
            var point = point
            if let seconds { point.seconds = seconds }
            return point
        }
        let results = try await measureOperatingPoints(
            points, binary: binary, brokerPort: broker.port, inFlight: inFlight, work: work)
        say()
        say(pacedTable(results))
    }
}
