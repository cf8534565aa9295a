import Agent
import ChirpStack
import Clocks
import Foundation
import TestSupport
import Testing
import Transport

#if canImport(Glibc)
    import Glibc
#endif

extension AgentProcessTests {
    /// Faults a hotspot meets in the field, played against `hotspotd run` in a process of its own,
    /// a real mosquitto and a real SQLite store. After each, the ledger must hold: every uplink the
    /// store debited was published (by its sequence number, at least once), and every balance is
    /// the credits granted less the credits on the published uplinks.
    @Suite(.capturingLogs, .serialized) struct FaultTests {
        /// The broker dies (SIGKILL) and comes back five times while uplinks keep arriving.
        @Test func theBrokerKilledAndRestartedDuringAStreamLosesNothing() async throws {
            let rig = try await FaultRig()
            try await rig.startAgent()
            var generator = SplitMix64(seed: UInt64(UInt32.random(in: 0...UInt32.max)))
            let seed = generator.state
            let stream = Task { await rig.stream(for: 18) }
            for _ in 0..<5 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 1200...2500, using: &generator)))
                rig.broker.crash()
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...1200, using: &generator)))
                try rig.broker.start()
                // What a broker loses when it is killed is its own loss, not the agent's: the next
                // kill waits until the collector has what the broker held for it.
                #expect(await rig.collectorCaughtUp())
            }
            let (sent, acknowledged) = await stream.value
            #expect(rig.agentIsRunning)
            // A loaded machine paces the stream slower (each datagram waits for its PUSH_ACK a
            // moment, and the full suite runs other agents beside this one): the bound is on the
            // share acknowledged, and the stream's length a sanity one (at least 5.5 datagrams a
            // second, 800 uplinks).
            #expect(sent > 100, "a stream of \(sent) datagrams in 18 s")
            #expect(
                acknowledged * 100 >= sent * 99,
                "the forwarder's datagrams were acknowledged throughout: \(acknowledged) of \(sent)")
            // The broker's outages must not reach the radio side: acknowledgements stay prompt.
            let slow = rig.acknowledgementDelay(quantile: 0.99)
            #expect(slow < .seconds(2), "99 % of PUSH_ACKs within 2 s, not \(slow)")
            _ = await eventually(within: 60) { await rig.ledgerProblem() == nil }
            let problem = await rig.ledgerProblem()
            #expect(problem == nil, "seed \(seed)")
            let debited = try await rig.debited()
            #expect(
                debited.charges.count > sent * 5,
                "eight uplinks a datagram, a quarter of them dave's (who runs out of credit)")
            #expect(debited.balances["dave"].map { $0 < 3 } == true, "dave's owner ran out of credit along the way")
            #expect(rig.stopAgent() == 0)
        }

        /// The agent is killed (SIGKILL) at a random moment of a stream, six times, and started
        /// again; after each restart the ledger holds once the outbox has drained.
        @Test func killingTheAgentAtRandomMomentsLosesNoDebitedUplink() async throws {
            let rig = try await FaultRig()
            var generator = SplitMix64(seed: UInt64(UInt32.random(in: 0...UInt32.max)))
            let seed = generator.state
            for run in 0..<6 {
                try await rig.startAgent()
                let stream = Task { await rig.stream(for: 4) }
                try await Task.sleep(for: .milliseconds(Int.random(in: 100...3000, using: &generator)))
                rig.killAgent()
                _ = await stream.value
                try await rig.startAgent()
                _ = await eventually(within: 30) { await rig.ledgerProblem() == nil }
                let problem = await rig.ledgerProblem()
                #expect(problem == nil, "seed \(seed), run \(run)")
                rig.killAgent()
            }
            try await rig.startAgent()
            await rig.stream(for: 1)
            _ = await eventually(within: 30) { await rig.ledgerProblem() == nil }
            let problem = await rig.ledgerProblem()
            #expect(problem == nil, "seed \(seed)")
            #expect(rig.stopAgent() == 0)
            #expect(try await rig.debited().charges.count > 500)
        }
    }
}

/// A small tmpfs mounted for a test, unmounted after it.
final class SmallDisk {
    let path: String
    init(megabytes: Int) throws {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "hotspotd-disk-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            ).path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let mounted = try run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m,mode=0755", "tmpfs", path])
        guard mounted.status == 0 else { throw BrokerError("cannot mount a tmpfs on \(path): \(mounted.error)") }
    }

    /// Writes a file until the disk is full; its path.
    @discardableResult
    func fill() -> String {
        let filler = path + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let chunk = [UInt8](repeating: 0xEE, count: 4096)
        while write(fd, chunk, chunk.count) > 0 {}
        close(fd)
        return filler
    }

    deinit {
        _ = try? run("/usr/bin/umount", ["-l", path])
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Whether this process may mount a tmpfs (root in a container may not).
let mayMountTmpfs: Bool = {
    guard geteuid() == 0, let disk = try? SmallDisk(megabytes: 1) else { return false }
    _ = disk
    return true
}()

/// Faults of the data directory's disk; they need a file system of their own, which only root
/// may mount.
@Suite(.capturingLogs, .serialized, .enabled(if: mayMountTmpfs, "mounting a small tmpfs needs root (CAP_SYS_ADMIN)"))
struct DiskFaultTests {
    /// With the broker away the outbox must grow on disk, and the disk fills: the forwarder's
    /// datagrams are still acknowledged, nothing that could not be stored is debited, STATUS and
    /// the log say why, and once space returns uplinks are debited and delivered again.
    @Test func aFullDiskDebitsNothingItCannotStoreAndTheAgentRecovers() async throws {
        let disk = try SmallDisk(megabytes: 8)
        let rig = try await FaultRig(dataDirectory: disk.path + "/data")
        defer { rig.killAgent() }
        try await rig.startAgent()
        await rig.stream(for: 1)
        _ = await eventually(within: 30) { await rig.ledgerProblem() == nil }
        let before = await rig.ledgerProblem()
        #expect(before == nil)

        rig.broker.stop()
        let filler = disk.fill()
        let delaysBefore = rig.acknowledgementDelays.count
        let whileFull = await rig.stream(for: 4)
        #expect(whileFull.acknowledged == whileFull.sent, "the radio side kept running: every datagram acknowledged")
        let slow = rig.acknowledgementDelay(quantile: 0.99, since: delaysBefore)
        #expect(slow < .seconds(2), "and promptly: 99 % of PUSH_ACKs within 2 s, not \(slow)")
        #expect(rig.agentIsRunning)
        let said = await eventually(within: 10) { rig.statusLines.last?.contains("full") == true }
        #expect(said, "STATUS says the disk is full: \(rig.statusLines.suffix(3))")
        #expect(tail(of: rig.logFile, lines: 400).contains("full"), "the log says why")
        let debitedWhileFull = try await rig.debited().charges.count

        try FileManager.default.removeItem(atPath: filler)
        await rig.stream(for: 2)
        let recovered = await eventually(within: 10) { rig.statusLines.last.map { !$0.contains("full") } == true }
        #expect(recovered, "STATUS no longer speaks of a full disk: \(rig.statusLines.suffix(3))")
        try rig.broker.start()
        _ = await eventually(within: 60) { await rig.ledgerProblem() == nil }
        let after = await rig.ledgerProblem()
        #expect(after == nil)
        #expect(
            try await rig.debited().charges.count > debitedWhileFull, "uplinks are debited again once space returns")
        #expect(rig.stopAgent() == 0)
    }
}

/// A store file the agent may not write (a card remounted read-only, a wrong `chmod`). The
/// tests run as root, whom file modes do not stop: the agent runs without CAP_DAC_OVERRIDE.
@Suite(
    .capturingLogs, .serialized,
    .enabled(
        if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs root and setpriv"
    ))
struct ReadOnlyStoreTests {
    static let unprivileged = [
        "/usr/bin/setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--",
    ]

    @Test func aReadOnlyStoreStopsTheStartWithItsReasonAndLosesNothing() async throws {
        let rig = try await FaultRig()
        try await rig.startAgent(wrapper: Self.unprivileged)
        await rig.stream(for: 1)
        _ = await eventually(within: 30) { await rig.ledgerProblem() == nil }
        rig.broker.stop()
        await rig.stream(for: 1)  // these wait in the outbox
        #expect(rig.stopAgent() == 0)
        let waiting = try await rig.debited().charges.count

        let database = rig.dataDirectory + "/hotspotd.db"
        #expect(chmod(database, 0o444) == 0)
        await #expect(throws: (any Error).self) { try await rig.startAgent(wrapper: Self.unprivileged) }
        #expect(!rig.agentIsRunning)
        #expect(rig.lastExitStatus == 1, "an exit that systemd's Restart=on-failure retries")
        #expect(
            tail(of: rig.logFile, lines: 3).contains("hotspotd.db is read-only"),
            "the log names the file and the reason")

        #expect(chmod(database, 0o644) == 0)
        try rig.broker.start()
        try await rig.startAgent(wrapper: Self.unprivileged)
        _ = await eventually(within: 30) { await rig.ledgerProblem() == nil }
        let problem = await rig.ledgerProblem()
        #expect(problem == nil)
        #expect(try await rig.debited().charges.count == waiting, "the failed start neither lost nor added a charge")
        #expect(rig.stopAgent() == 0)
    }
}

/// The radio stops answering in the middle of a stream (the mock board's SX1276, fed as fast
/// as the agent takes frames): a hang that a reset clears is set right by the driver and the
/// stream goes on, watchdog pings and all; a wedge that survives resets stops the pings, so
/// that systemd restarts the service.
@Suite(.capturingLogs, .serialized) struct RadioFaultTests {
    struct Run {
        var manager: ServiceManager
        var log: String
        var pid: pid_t
        var broker: Broker
        var directory: String

        func end() {
            kill(pid, SIGKILL)
            _ = waitForExit(pid, seconds: 5)
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    func start(fault: String) throws -> Run {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-radio-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        try FileManager.default.createDirectory(atPath: directory + "/boards", withIntermediateDirectories: true)
        let profile = try String(contentsOfFile: repositoryRoot + "/Board/mock.toml", encoding: .utf8)
            .replacingOccurrences(of: "name = \"mock\"", with: "name = \"faulty\"")
        try (profile + "\n[mock]\n\(fault)\n").write(
            toFile: directory + "/boards/faulty.toml", atomically: true, encoding: .utf8)
        // Data uplinks of a sensor nobody paired: metered (and dropped), which is all this needs.
        var frames: [UInt8] = []
        for fCnt in 0..<300_000 {
            let frame: [UInt8] = [
                0x40, 0x01, 0x02, 0x03, 0x04, 0x00, UInt8(fCnt & 0xFF), UInt8(fCnt >> 8 & 0xFF), 0x01, 0xAA, 0xBB, 0x11,
                0x22, 0x33, 0x44,
            ]
            frames += [0, UInt8(frame.count)] + frame
        }
        try Data(frames).write(to: URL(fileURLWithPath: directory + "/frames.bin"))
        let broker = try Broker()
        try """
        [gateway]
        board = "faulty"
        key_file = "\(directory)/gateway.key"
        data_dir = "\(directory)/data"
        [mqtt]
        server = "mqtt://127.0.0.1:\(broker.port)"
        [credits]
        authority = "13WvV82S7QN3VMzMSieiGxvuaPKknMtf213E5JwPnboDkUfesKw"
        [coverage]
        enabled = false
        """.write(toFile: directory + "/hotspotd.toml", atomically: true, encoding: .utf8)
        let manager = ServiceManager()
        let pid = try spawn(
            productsDirectory.appendingPathComponent("hotspotd").path,
            ["run", "--config", directory + "/hotspotd.toml", "--replay-frames", directory + "/frames.bin"],
            environment: [
                "NOTIFY_SOCKET": manager.path, "WATCHDOG_USEC": "1000000",
                "HOTSPOTD_BOARD_DIR": directory + "/boards:" + repositoryRoot + "/Board",
            ], logFile: directory + "/agent.log")
        return Run(manager: manager, log: directory + "/agent.log", pid: pid, broker: broker, directory: directory)
    }

    /// The frame count of the newest STATUS= line among `messages`.
    func received(_ messages: ArraySlice<String>) -> Int? {
        for message in messages.reversed() {
            guard let range = message.range(of: "STATUS=received ") else { continue }
            return Int(message[range.upperBound...].prefix { $0.isNumber })
        }
        return nil
    }

    @Test func aRadioThatHangsMidStreamIsSetUpAgainAndTheStreamGoesOn() async throws {
        let run = try start(fault: "hang_after_seconds = 3")
        defer { run.end() }
        try await Task.sleep(for: .seconds(2.5))
        let before = run.manager.messages
        #expect(before.contains { $0.contains("READY=1") })
        #expect((received(before[...]) ?? 0) > 0, "frames flowed before the hang: \(before.suffix(2))")
        // The hang, the health checks that find it, the reset and the new set-up.
        let recovered = await eventually(within: 15) {
            (try? String(contentsOfFile: run.log, encoding: .utf8))?.contains("receiving again") == true
        }
        #expect(recovered, "\(tail(of: run.log))")
        let log = try String(contentsOfFile: run.log, encoding: .utf8)
        #expect(log.contains("setting the radio up again"))
        let atRecovery = run.manager.messages
        try await Task.sleep(for: .seconds(3))
        let after = run.manager.messages[atRecovery.count...]
        let (then, now) = (received(atRecovery[...]) ?? 0, received(after) ?? 0)
        #expect(now > then + 100, "frames flow again after the reset: \(then) then, \(now) now")
        #expect(after.contains("WATCHDOG=1"), "the watchdog is pinged again")
        #expect(waitForExit(run.pid, seconds: 0) == nil, "the agent did not exit")
    }

    @Test func aRadioWedgedMidStreamStopsTheWatchdogPings() async throws {
        let run = try start(fault: "wedge_after_seconds = 3")
        defer { run.end() }
        try await Task.sleep(for: .seconds(2.5))
        let before = run.manager.messages
        #expect((received(before[...]) ?? 0) > 0, "frames flowed before the wedge")
        #expect(before.contains("WATCHDOG=1"))
        // Three health checks of a third of a second fail, the resets do not help.
        try await Task.sleep(for: .seconds(4))
        let settled = run.manager.messages.count
        try await Task.sleep(for: .seconds(3))
        let after = run.manager.messages[settled...]
        #expect(!after.contains("WATCHDOG=1"), "\(after)")
        #expect(after.contains { $0.hasPrefix("STATUS=") }, "the agent is alive and still reporting")
        #expect(try String(contentsOfFile: run.log, encoding: .utf8).contains("the radio does not answer"))
    }
}
