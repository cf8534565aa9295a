import CSQLite
import Foundation
import Store
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `hotspotd run` in a process of its own, as a hotspot runs it: its own data directory and
/// gateway key, the workload's sensors paired and their owners credited beforehand, systemd's
/// notifications caught to see READY=1, and its store watched read-only for progress.
final class AgentProcess {
    let pid: pid_t
    let directory: URL
    /// CLOCK_MONOTONIC seconds just before the exec, and when READY=1 arrived.
    let startedAt: Double
    let readyAt: Double
    private let notify: DatagramSink
    private var probe: OpaquePointer?

    /// `board` is "mock" (the SX1276 on the mock board; `replay` feeds its air) or a packet
    /// forwarder profile ("rak2287") listening on `udpPort`.
    init(
        binary: String, board: String, brokerPort: Int, udpPort: Int = 1700, replay: String? = nil,
        provision workload: Workload?, maximumInFlight: Int, json: Bool = false, statsInterval: String = "1h",
        logLevel: String = "warning", directory existing: URL? = nil
    ) async throws {
        directory =
            existing
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "hotspot-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = directory.appendingPathComponent("hotspotd.toml").path
        try """
        [gateway]
        board = "\(board)"
        key_file = "\(directory.path)/gateway.key"
        data_dir = "\(directory.path)/data"
        shutdown_timeout = "30s"
        [semtech_udp]
        bind = "127.0.0.1:\(udpPort)"
        [mqtt]
        server = "mqtt://127.0.0.1:\(brokerPort)"
        max_inflight = \(maximumInFlight)
        json = \(json)
        [credits]
        authority = "13WvV82S7QN3VMzMSieiGxvuaPKknMtf213E5JwPnboDkUfesKw"
        [coverage]
        enabled = false
        [stats]
        interval = "\(statsInterval)"
        [log]
        level = "\(logLevel)"
        """.write(toFile: config, atomically: true, encoding: .utf8)
        if let workload {
            let store = try Store.open(directory: directory.path + "/data")
            try await workload.provision(store)
        }
        notify = DatagramSink()
        var arguments = ["run", "--config", config]
        if let replay { arguments += ["--replay-frames", replay] }
        startedAt = now()
        pid = try spawn(
            binary, arguments,
            environment: ["NOTIFY_SOCKET": notify.path, "HOTSPOTD_BOARD_DIR": repositoryRoot + "/Board"],
            logFile: directory.path + "/agent.log")
        let messages = notify.collect(seconds: 30) { $0.contains("READY=1") }
        readyAt = now()
        guard messages.contains(where: { $0.contains("READY=1") }) else {
            kill(pid, SIGKILL)
            _ = waitForExit(pid, seconds: 5)
            throw BenchError("hotspotd did not become ready within 30 s")
        }
    }

    /// CPU time the agent has used so far, in microseconds.
    var cpuMicroseconds: Int64 { childCPUMicroseconds(pid) ?? 0 }

    /// The agent's peak resident memory so far, in MB.
    var peakResidentMegabytes: Double { Double(statusKilobytes("VmHWM", pid: String(pid)) ?? 0) / 1024 }

    /// The most anonymous memory (heap, stacks: what is the agent's alone, where the rest of
    /// RSS is pages of the binary and libraries) seen at any `progress()` poll, in MB.
    private(set) var peakAnonymousMegabytes: Double = 0

    private func sampleAnonymousMemory() {
        let megabytes = Double(statusKilobytes("RssAnon", pid: String(pid)) ?? 0) / 1024
        peakAnonymousMegabytes = max(peakAnonymousMegabytes, megabytes)
    }

    /// Uplinks charged so far and messages waiting in the outbox, read from the agent's store
    /// through a read-only connection of this process.
    func progress() -> (charged: Int, outbox: Int) {
        sampleAnonymousMemory()
        if probe == nil {
            var db: OpaquePointer?
            guard sqlite3_open_v2(directory.path + "/data/hotspotd.db", &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK
            else { return (0, -1) }
            sqlite3_busy_timeout(db, 1000)
            probe = db
        }
        return (Int(integer("SELECT COALESCE(MAX(seq), 0) FROM charges")), Int(integer("SELECT COUNT(*) FROM outbox")))
    }

    private func integer(_ sql: String) -> Int64 {
        queryInteger(probe, sql)
    }

    /// Waits until `charged` uplinks are charged and the outbox is empty (every message
    /// acknowledged by the broker), polling every 20 ms; false after `seconds`.
    func waitUntilDelivered(charged: Int, seconds: Double) async -> Bool {
        await waitUntil(seconds: seconds) {
            let (done, outbox) = progress()
            return done >= charged && outbox == 0
        }
    }

    /// SIGTERM, and the exit status (nil if it had to be killed).
    @discardableResult
    func stop() -> Int32? {
        if let probe { sqlite3_close_v2(probe) }
        probe = nil
        kill(pid, SIGTERM)
        if let status = waitForExit(pid, seconds: 60) { return status }
        kill(pid, SIGKILL)
        _ = waitForExit(pid, seconds: 5)
        return nil
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}
