import Agent
import ChirpStack
import Clocks
import Foundation
import Messages
import TestSupport
import Testing
import Transport

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.capturingLogs, .serialized) struct RunTests {
    let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    func writeConfiguration(port: Int, board: String = "mock", extra: String = "") throws -> String {
        let path = directory.appendingPathComponent("hotspotd.toml").path
        try """
        [gateway]
        board = "\(board)"
        key_file = "\(directory.path)/gateway.key"
        data_dir = "\(directory.path)/data"
        shutdown_timeout = "2s"
        [mqtt]
        server = "mqtt://127.0.0.1:\(port)"
        [credits]
        authority = "13WvV82S7QN3VMzMSieiGxvuaPKknMtf213E5JwPnboDkUfesKw"
        [coverage]
        enabled = false
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func start(_ config: String, notify: DatagramSink?, watchdogMicroseconds: Int = 1_000_000, arguments: [String] = [])
        throws -> pid_t
    {
        var environment = ["HOTSPOTD_BOARD_DIR": directory.path + "/boards:" + repositoryRoot + "/Board"]
        if let notify {
            environment["NOTIFY_SOCKET"] = notify.path
            environment["WATCHDOG_USEC"] = String(watchdogMicroseconds)
        }
        return try spawn(
            productsDirectory.appendingPathComponent("hotspotd").path, ["run", "--config", config] + arguments,
            environment: environment)
    }

    func retainedConnState(port: Int) throws -> Gw_ConnState? {
        let retained = try run(
            "/usr/bin/mosquitto_sub",
            ["-p", "\(port)", "-t", "+/gateway/+/state/conn", "-C", "1", "-W", "5", "-F", "%x"])
        let hex = retained.output.trimmingCharacters(in: .whitespacesAndNewlines)
        return hex.isEmpty ? nil : try Gw_ConnState(serializedBytes: hexBytes(hex))
    }

    @Test func readyWatchdogAndStatusThenSIGTERMExitsCleanlyWithOFFLINE() async throws {
        let broker = try Broker()
        let notify = DatagramSink()
        let config = try writeConfiguration(port: broker.port)
        let agent = try start(config, notify: notify)
        defer {
            kill(agent, SIGKILL)
            _ = waitForExit(agent, seconds: 1)
        }
        let messages = notify.collect(seconds: 15) { $0.contains("WATCHDOG=1") }
        #expect(messages.first?.contains("READY=1") == true, "\(messages)")
        #expect(messages.contains { $0.hasPrefix("STATUS=received") })
        #expect(messages.contains("WATCHDOG=1"))
        #expect(try retainedConnState(port: broker.port)?.state == .online)
        let status = try await runHotspotd(["status", "--config", config, "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        let fields = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        #expect(fields?["state"] as? String == "running")
        #expect(fields?["pid"] as? Int == Int(agent))
        #expect(fields?["broker_connected"] as? Bool == true)
        #expect(fields?["radio_answering"] as? Bool == true)
        #expect(fields?["outbox_depth"] as? Int == 0)
        kill(agent, SIGTERM)
        #expect(waitForExit(agent, seconds: 15) == 0)
        #expect(try retainedConnState(port: broker.port)?.state == .offline)
        let stopped = try await runHotspotd(["status", "--config", config])
        #expect(stopped.status == 3)
        #expect(stopped.stdout.hasPrefix("state"), "\(stopped.stdout)")
        #expect(stopped.stdout.contains("stopped (last report"), "\(stopped.stdout)")
    }

    @Test func killingTheAgentLeavesOFFLINERetained() async throws {
        let broker = try Broker()
        let notify = DatagramSink()
        let agent = try start(try writeConfiguration(port: broker.port), notify: notify)
        defer {
            kill(agent, SIGKILL)
            _ = waitForExit(agent, seconds: 1)
        }
        _ = notify.collect(seconds: 15) { $0.contains("READY=1") }
        #expect(try retainedConnState(port: broker.port)?.state == .online)
        kill(agent, SIGKILL)
        _ = waitForExit(agent, seconds: 5)
        // The broker publishes the agent's will as soon as the connection drops.
        var state = try retainedConnState(port: broker.port)?.state
        for _ in 0..<20 where state != .offline {
            usleep(250_000)
            state = try retainedConnState(port: broker.port)?.state
        }
        #expect(state == .offline)
        let died = try await runHotspotd(["status", "--config", try writeConfiguration(port: broker.port)])
        #expect(died.status == 3)
        #expect(died.stdout.contains("died"), "\(died.stdout)")
    }

    @Test func simulatedSensorsUplinksReachTheBroker() async throws {
        let broker = try Broker()
        let config = try writeConfiguration(port: broker.port)
        // forward_unpaired: the demo's sensors are forwarded without a pairing.
        let text = try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "[credits]\n", with: "[credits]\nforward_unpaired = true\n")
        #expect(text.contains("forward_unpaired = true"))
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let agent = try start(config, notify: nil, arguments: ["--simulate-sensors"])
        defer {
            kill(agent, SIGKILL)
            _ = waitForExit(agent, seconds: 1)
        }
        let up = try run(
            "/usr/bin/mosquitto_sub",
            ["-p", "\(broker.port)", "-t", "+/gateway/+/event/up", "-C", "1", "-W", "20", "-F", "%x"])
        let hex = up.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let frame = try Gw_UplinkFrame(serializedBytes: hexBytes(hex))
        #expect(frame.phyPayload.count >= 12, "a LoRaWAN data frame from a simulated sensor")
        #expect([0xDA, 0xDB, 0xDC].contains(frame.phyPayload[1]), "DevAddr 26011BDx, little endian")
        kill(agent, SIGTERM)
        #expect(waitForExit(agent, seconds: 15) == 0)
    }

    @Test func everyReplayedFrameIsForwarded() async throws {
        // The benchmark's load: frames replayed into the mock board's air as fast as the driver
        // and the meter take them; none may be lost on the way to the broker.
        let broker = try Broker()
        let config = try writeConfiguration(port: broker.port)
        let text = try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "[credits]\n", with: "[credits]\nforward_unpaired = true\n")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let count = 300
        var replay: [UInt8] = []
        for index in 0..<count {
            // Unconfirmed data up from 26011BDD, FCnt = index, FPort 2, a payload, a MIC (not checked: unpaired).
            let frame: [UInt8] =
                [0x40, 0xDD, 0x1B, 0x01, 0x26, 0x00, UInt8(index & 0xFF), UInt8(index >> 8), 0x02]
                + [UInt8](repeating: UInt8(index % 251), count: 12 + index % 49) + [0, 0, 0, 0]
            replay += [UInt8(frame.count >> 8), UInt8(frame.count & 0xFF)] + frame
        }
        let file = directory.appendingPathComponent("frames.bin").path
        try Data(replay).write(to: URL(fileURLWithPath: file))
        let received = directory.appendingPathComponent("received.txt").path
        let subscriber = try spawn(
            "/usr/bin/mosquitto_sub",
            ["-p", "\(broker.port)", "-t", "+/gateway/+/event/up", "-C", "\(count)", "-W", "60", "-F", "%t"],
            logFile: received)
        defer {
            kill(subscriber, SIGKILL)
            _ = waitForExit(subscriber, seconds: 1)
        }
        usleep(500_000)
        let agent = try start(config, notify: nil, arguments: ["--replay-frames", file])
        defer {
            kill(agent, SIGKILL)
            _ = waitForExit(agent, seconds: 1)
        }
        #expect(waitForExit(subscriber, seconds: 60) == 0, "the subscriber saw \(count) uplinks")
        let lines = try String(contentsOfFile: received, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == count)
        kill(agent, SIGTERM)
        #expect(waitForExit(agent, seconds: 15) == 0)
    }

    @Test func aSecondSignalExitsAtOnceAndLosesNothingStored() async throws {
        let broker = try Broker()
        defer { broker.resume() }
        let config = try writeConfiguration(port: broker.port)
        // A long drain, so that the second signal arrives while the first one's shutdown waits.
        let text = try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "[credits]\n", with: "[credits]\nforward_unpaired = true\n")
            .replacingOccurrences(of: "shutdown_timeout = \"2s\"", with: "shutdown_timeout = \"60s\"")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let agent = try start(config, notify: nil, arguments: ["--simulate-sensors"])
        defer {
            kill(agent, SIGKILL)
            _ = waitForExit(agent, seconds: 1)
        }
        _ = try run(
            "/usr/bin/mosquitto_sub", ["-p", "\(broker.port)", "-t", "+/gateway/+/event/up", "-C", "1", "-W", "20"])

        // The broker stops answering: uplinks stay in the outbox, unacknowledged. Rows it had
        // acknowledged go within half a second (deletes are gathered): counted after that.
        broker.pause()
        usleep(1_000_000)
        var queued = 0
        for _ in 0..<100 where queued == 0 {
            usleep(200_000)
            queued = try await outboxDepth(config)
        }
        #expect(queued > 0, "an uplink waits in the outbox")

        kill(agent, SIGTERM)
        #expect(waitForExit(agent, seconds: 1) == nil, "the first signal waits for the outbox to drain")
        kill(agent, SIGTERM)
        #expect(waitForExit(agent, seconds: 2) == -SIGTERM, "the second one ends it at once: it dies of the signal")
        #expect(try await outboxDepth(config) >= queued, "what was stored is still stored")

        // The next start delivers what the interrupted one could not.
        broker.resume()
        let restarted = try start(config, notify: nil)
        defer {
            kill(restarted, SIGKILL)
            _ = waitForExit(restarted, seconds: 1)
        }
        var left = queued
        for _ in 0..<100 where left > 0 {
            usleep(200_000)
            left = try await outboxDepth(config)
        }
        #expect(left == 0, "the outbox drained after the restart")
        kill(restarted, SIGTERM)
        #expect(waitForExit(restarted, seconds: 15) == 0)
    }

    /// The outbox depth `hotspotd status` reads from the store.
    func outboxDepth(_ config: String) async throws -> Int {
        let status = try await runHotspotd(["status", "--config", config, "--json"])
        let fields = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        return fields?["outbox_depth"] as? Int ?? -1
    }

    @Test func badConfigurationExitsSeventyEightNamingTheKey() async throws {
        let config = try writeConfiguration(port: 1, extra: "[radio]\nspreading_factor = 42\n")
        let result = try await runHotspotd(["run", "--config", config])
        #expect(result.status == 78)
        #expect(result.stderr.contains("radio.spreading_factor"))
        #expect(result.stderr.contains("hotspotd.toml:"))
        let missing = try await runHotspotd(["run", "--config", directory.path + "/none.toml"])
        #expect(missing.status == 78)
        let neverRan = try await runHotspotd(["status", "--config", config])
        #expect(neverRan.status == 1)
        #expect(neverRan.stderr.contains("has not run"))
    }

    /// The store holds every NwkSKey, the key file the gateway's identity: the agent creates
    /// both readable by their owner only (the tests run with the usual umask, 022).
    @Test func theAgentsFilesAreItsOwnerAlone() async throws {
        let config = try writeConfiguration(port: 1)
        let agent = try start(config, notify: nil)
        #expect(
            await eventually(within: 30) {
                FileManager.default.fileExists(atPath: self.directory.path + "/data/status.json")
            })
        kill(agent, SIGTERM)
        #expect(waitForExit(agent, seconds: 15) == 0)
        func mode(_ path: String) -> Int? {
            (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int
        }
        #expect(mode(directory.path + "/data") == 0o700)
        #expect(mode(directory.path + "/data/hotspotd.db") == 0o600)
        #expect(mode(directory.path + "/gateway.key") == 0o600)
        for companion in ["-wal", "-shm"]
        where FileManager.default.fileExists(atPath: directory.path + "/data/hotspotd.db" + companion) {
            #expect(mode(directory.path + "/data/hotspotd.db" + companion) == 0o600, "\(companion)")
        }
    }

    @Test func aKeyFileOthersMayReadStopsTheStart() async throws {
        let config = try writeConfiguration(port: 1)
        let keyFile = directory.path + "/gateway.key"
        #expect(try await runHotspotd(["key", "generate", "--key-file", keyFile]).status == 0)
        chmod(keyFile, 0o644)
        let result = try await runHotspotd(["run", "--config", config])
        #expect(result.status == 78)
        #expect(result.stderr.contains("mode 0644"))
        #expect(result.stderr.contains("chmod 600"))
    }
}

func hexBytes(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex, let next = text.index(index, offsetBy: 2, limitedBy: text.endIndex),
        let byte = UInt8(text[index..<next], radix: 16)
    {
        bytes.append(byte)
        index = next
    }
    return bytes
}
