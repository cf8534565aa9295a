import Foundation
import TestSupport
import Testing
import Wire

#if canImport(Glibc)
    import Glibc
#endif

extension AgentProcessTests {
    /// A channel plan from the network server behind a packet forwarder, end to end: `hotspotd run`
    /// (board rak2287) with `semtech_udp.forwarder_config` and `forwarder_unit`, a real mosquitto,
    /// the plan made by ChirpStack's published bindings; `systemctl` is a stand-in on PATH that
    /// writes down how it was called.
    @Suite(.capturingLogs, .serialized) struct ChannelPlanForwarderTests {
        static let globalConf = """
            {
                "SX1301_conf": {
                    "lorawan_public": true,
                    "clksrc": 1, /* radio_1 provides clock to concentrator */
                    "radio_0": {"enable": true, "type": "SX1257", "freq": 867500000, "tx_enable": true},
                    "radio_1": {"enable": true, "type": "SX1257", "freq": 868500000, "rssi_offset": -166.0},
                    "chan_multiSF_0": {"enable": true, "radio": 1, "if": -400000},
                    "tx_lut_0": {"pa_gain": 0, "mix_gain": 8, "rf_power": -6, "dig_gain": 0}
                },
                "gateway_conf": {"gateway_ID": "AA555A0000000000", "server_address": "localhost", "serv_port_up": 1700}
            }
            """

        func plan(version: String, frequencies: [Int]) throws -> [UInt8] {
            let modulation = #"{"bandwidth": 125000, "spreading_factors": [7, 8, 9, 10, 11, 12]}"#
            let channels = frequencies.map { #"{"frequency": \#($0), "lora_modulation_config": \#(modulation)}"# }
            let gateway = #""gateway_id": "\#(FaultRig.gatewayID)", "version": "\#(version)""#
            return try encodeWithChirpStack(
                json: #"{\#(gateway), "channels": [\#(channels.joined(separator: ","))]}"#, as: "GatewayConfiguration")
        }

        @Test(.timeLimit(.minutes(3)))
        func aPlanIsWrittenIntoTheForwardersFileTheUnitRestartedAndTheVersionReported() async throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "hotspotd-forwarder-plan-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            ).path
            try FileManager.default.createDirectory(atPath: directory + "/bin", withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let file = directory + "/global_conf.json"
            try Self.globalConf.write(toFile: file, atomically: true, encoding: .utf8)
            let calls = directory + "/systemctl.calls"
            try "#!/bin/sh\necho \"$@\" >> \(calls)\n".write(
                toFile: directory + "/bin/systemctl", atomically: true, encoding: .utf8)
            chmod(directory + "/bin/systemctl", 0o755)

            let rig = try await FaultRig(
                semtechUDP: """
                    forwarder_config = "\(file)"
                    forwarder_unit = "lora-pkt-fwd.service"
                    """, stats: "interval = \"1s\"")
            let stats = try await rig.watch(event: "stats")
            let path = "\(directory)/bin:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            try await rig.startAgent(environment: ["PATH": path])
            defer { rig.killAgent() }
            @Sendable func reportedVersions(after skipped: Int = 0) -> [String] {
                // Not the watcher's own probe, which is no GatewayStats.
                let reports = stats.messages.dropFirst(skipped).filter { $0 != Array("probe".utf8) }
                return (try? decodeWithChirpStack(Array(reports), as: "GatewayStats"))?.compactMap {
                    $0["config_version"] as? String
                } ?? []
            }

            // Eight channels from 867.1 MHz: the file gets them, the forwarder is restarted.
            try rig.publish(
                command: try plan(version: "eu868-8", frequencies: (0..<8).map { 867_100_000 + 200_000 * $0 }),
                on: "config")
            #expect(
                await eventually(within: 20) { reportedVersions().contains("eu868-8") }, "ChirpStack reads the version")
            #expect((try? String(contentsOfFile: calls, encoding: .utf8)) == "restart lora-pkt-fwd.service\n")
            let written = try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
            let conf = try #require(written["SX1301_conf"])
            // 1.4 MHz of channels: two radios, 867.1–867.9 MHz round 867.5 and 868.1–868.5 round 868.3.
            #expect(conf["radio_0"]?["freq"]?.number == 867_500_000 && conf["radio_1"]?["freq"]?.number == 868_300_000)
            #expect(conf["radio_1"]?["enable"]?.bool == true)
            #expect(
                (0..<8).map { conf["chan_multiSF_\($0)"]?["if"]?.number ?? .nan } == [
                    -400_000, -200_000, 0, 200_000, 400_000, -200_000, 0, 200_000,
                ])
            #expect((0..<8).map { conf["chan_multiSF_\($0)"]?["radio"]?.number ?? .nan } == [0, 0, 0, 0, 0, 1, 1, 1])
            #expect(conf["tx_lut_0"]?["mix_gain"]?.number == 8, "the rest of the file as it was")

            // A plan outside the region: refused whole, the file and the forwarder left alone.
            let before = try String(contentsOfFile: file, encoding: .utf8)
            try rig.publish(command: try plan(version: "us", frequencies: [902_300_000]), on: "config")
            #expect(
                await eventually(within: 20) {
                    tail(of: rig.logFile, lines: 200).contains("refused: 902.3 MHz is outside EU868")
                })
            #expect(try String(contentsOfFile: file, encoding: .utf8) == before)
            #expect((try? String(contentsOfFile: calls, encoding: .utf8))?.split(separator: "\n").count == 1)

            // A flood of garbage on command/config: every message refused and counted, the journal
            // given five lines and then one a minute.
            let flood = (0..<100).map { "not a plan \($0)" }.joined(separator: "\n") + "\n"
            let published = try run(
                "/usr/bin/mosquitto_pub",
                [
                    "-p", "\(rig.broker.port)", "-q", "1", "-t", "eu868/gateway/\(FaultRig.gatewayID)/command/config",
                    "-l",
                ],
                input: Data(flood.utf8))
            #expect(published.status == 0, "\(published.error)")
            @Sendable func refusedCount() -> String? {
                let reports = stats.messages.filter { $0 != Array("probe".utf8) }
                let decoded = try? decodeWithChirpStack(reports, as: "GatewayStats")
                return (decoded?.last?["metadata"] as? [String: Any])?["config_refused"] as? String
            }
            #expect(await eventually(within: 20) { refusedCount() == "101" }, "\(refusedCount() ?? "none")")
            let refusals = tail(of: rig.logFile, lines: 2000).split(separator: "\n").filter {
                $0.contains("channel plan") && $0.contains("refused")
            }
            #expect(refusals.count <= 6, "\(refusals.count) lines for 101 refusals")
            #expect(rig.agentIsRunning)

            // A restart of the agent keeps the version it reports.
            #expect(rig.stopAgent() == 0)
            let seen = stats.messages.count
            try await rig.startAgent(environment: ["PATH": path])
            #expect(await eventually(within: 20) { !reportedVersions(after: seen).isEmpty })
            #expect(reportedVersions(after: seen).allSatisfy { $0 == "eu868-8" })
            #expect(rig.stopAgent() == 0)
        }
    }
}
