import ChirpStack
import Foundation
import Messages
import SwiftProtobuf
import TestSupport
import Testing
import Wire

#if canImport(Glibc)
    import Glibc
#endif

extension AgentProcessTests {
    /// `mqtt.servers` end to end: `hotspotd run` behind a forwarder with two real mosquittos; the
    /// first is killed mid-stream, the agent moves to the second with nothing lost, and goes back
    /// to the first when it answers again, each broker's retained state right all along.
    @Suite(.capturingLogs, .serialized) struct FailoverTests {
        /// A persistent subscriber to every uplink on a broker, writing each down in hex.
        final class Collector: Sendable {
            let file: String
            let port: Int
            let pid: pid_t

            init(broker: Broker, directory: String) async throws {
                port = broker.port
                file = directory + "/collected-\(broker.port).hex"
                pid = try spawn(
                    "/usr/bin/mosquitto_sub",
                    [
                        "-p", "\(broker.port)", "-i", "collector-\(broker.port)", "-c", "-q", "1", "-t",
                        "+/gateway/+/event/up", "-F", "%x",
                    ], logFile: file)
                let marker = Hex.encode(Array("probe".utf8))
                let port = self.port
                let file = self.file
                guard
                    await eventually(
                        within: 15,
                        {
                            _ = try? run(
                                "/usr/bin/mosquitto_pub",
                                ["-p", "\(port)", "-t", "probe/gateway/probe/event/up", "-q", "1", "-m", "probe"])
                            return await eventually(within: 0.3) {
                                (try? String(contentsOfFile: file, encoding: .utf8))?.contains(marker) == true
                            }
                        })
                else { throw BrokerError("the collector on port \(port) did not subscribe") }
            }

            deinit {
                kill(pid, SIGKILL)
                _ = waitForExit(pid, seconds: 5)
            }

            /// The store sequence number of every uplink collected, in order, repeats included.
            var sequenceNumbers: [Int64] {
                let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
                return text.split(separator: "\n").compactMap { line in
                    Hex.decode(String(line)).flatMap { try? Gw_UplinkFrame(serializedBytes: $0) }?.rxInfo.metadata[
                        "seq"
                    ]
                    .flatMap { Int64($0) }
                }
            }
        }

        func retainedState(port: Int) -> Gw_ConnState.State? {
            guard
                let retained = try? run(
                    "/usr/bin/mosquitto_sub",
                    ["-p", "\(port)", "-t", "+/gateway/+/state/conn", "-C", "1", "-W", "3", "-F", "%x"]),
                let bytes = Hex.decode(retained.output.trimmingCharacters(in: .whitespacesAndNewlines))
            else { return nil }
            return (try? Gw_ConnState(serializedBytes: bytes))?.state
        }

        @Test(.timeLimit(.minutes(4)))
        func theFirstBrokerKilledMidStreamLosesNothingAndTheAgentComesBack() async throws {
            let second = try Broker(configuration: "max_inflight_messages 0\nmax_queued_messages 0\n")
            let rig = try await FaultRig(
                mqtt: "failover_after = \"2s\"\nfailback_interval = \"2s\"",
                backupBrokers: ["mqtt://127.0.0.1:\(second.port)"])
            let backup = try await Collector(broker: second, directory: rig.directory)
            try await rig.startAgent()
            #expect(await eventually(within: 10) { self.retainedState(port: rig.broker.port) == .online })

            // A stream of uplinks; the first broker freezes a few datagrams in (uplinks stay in
            // flight, unacknowledged), then dies with no goodbye.
            for index in 0..<12 {
                if index == 3 { rig.broker.pause() }
                if index == 5 { rig.broker.crash() }
                // A PUSH_ACK later than the rig's short look still counts: what matters here is that
                // whatever was accepted (and charged) reaches a broker.
                await rig.push(8)
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(await eventually(within: 20) { self.retainedState(port: second.port) == .online })

            // Every uplink charged reached a broker: the first before it died, or the second.
            let charged = Set(try await rig.debited().charges.keys)
            #expect(charged.count > 60)
            let reachedFirst = Set(rig.published().keys)
            #expect(
                await eventually(within: 30) { charged.isSubset(of: reachedFirst.union(backup.sequenceNumbers)) },
                "missing: \(charged.subtracting(reachedFirst.union(backup.sequenceNumbers)).sorted())")
            // The second broker was given each once; what both have is at most what was in flight
            // when the first died, which the agent logs (QoS 1 across brokers: at least once, never
            // again for what the first acknowledged).
            let onSecond = backup.sequenceNumbers
            #expect(onSecond.count == Set(onSecond).count)
            let moved = tail(of: rig.logFile, lines: 2000).split(separator: "\n").first {
                $0.contains("moved to another broker")
            }
            let unacknowledged = moved.flatMap { line in
                line.firstRange(of: "unacknowledged=").map { Int(line[$0.upperBound...].prefix { $0.isNumber }) ?? -1 }
            }
            #expect((unacknowledged ?? 0) > 0, "the move is logged with what it sends again")
            #expect(reachedFirst.intersection(onSecond).count <= unacknowledged ?? 0)

            // The first comes back, empty (its persistence gone, so no stale ONLINE of its own): the
            // agent goes back to it, says ONLINE there, and leaves OFFLINE on the second.
            try? FileManager.default.removeItem(at: rig.broker.directory.appendingPathComponent("mosquitto.db"))
            try rig.broker.start()
            #expect(await eventually(within: 30) { self.retainedState(port: second.port) == .offline })
            #expect(self.retainedState(port: rig.broker.port) == .online)
            await rig.push(8)
            await rig.push(8)
            #expect(await eventually(within: 10) { ((try? await rig.debited().charges.count) ?? 0) > charged.count })
            #expect(
                await eventually(within: 30) {
                    let all = Set(try! await rig.debited().charges.keys)
                    return all.isSubset(of: Set(rig.published().keys).union(backup.sequenceNumbers))
                })
            #expect(rig.stopAgent() == 0)
            #expect(retainedState(port: rig.broker.port) == .offline)
            #expect(try await rig.outboxKinds().isEmpty)
            let log = (try? String(contentsOfFile: rig.logFile, encoding: .utf8)) ?? ""
            #expect(log.contains("moving to mqtt://127.0.0.1:\(second.port)"))
            #expect(log.contains("answers again"))
        }

        /// Both brokers out of reach (the hotspot's own link down): the agent goes round the list
        /// and back to the first, on a new client. What was in flight when the first died is sent
        /// again to it, not left waiting for acknowledgements that can never come.
        @Test(.timeLimit(.minutes(4)))
        func roundTheListAndBackToTheFirstLosesNothing() async throws {
            let nobody = try Broker.freePort()
            let rig = try await FaultRig(
                mqtt: "failover_after = \"2s\"\nfailback_interval = \"1h\"",
                backupBrokers: ["mqtt://127.0.0.1:\(nobody)"])
            try await rig.startAgent()
            // The first broker freezes (its PUBACKs stop, so uplinks stay in flight), then dies.
            for index in 0..<8 {
                if index == 2 { rig.broker.pause() }
                if index == 5 { rig.broker.crash() }
                await rig.push(8)
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(
                await eventually(within: 20) {
                    tail(of: rig.logFile, lines: 500).contains("moving to mqtt://127.0.0.1:\(nobody)")
                })
            try rig.broker.start()
            #expect(
                await eventually(within: 20) {
                    tail(of: rig.logFile, lines: 500).contains("moving to mqtt://127.0.0.1:\(rig.broker.port)")
                })
            let charged = Set(try await rig.debited().charges.keys)
            #expect(charged.count > 40)
            #expect(
                await eventually(within: 30) { charged.isSubset(of: Set(rig.published().keys)) },
                "missing: \(charged.subtracting(rig.published().keys).sorted())")
            #expect(await eventually(within: 10) { self.retainedState(port: rig.broker.port) == .online })
            #expect(rig.stopAgent() == 0)
            #expect(try await rig.outboxKinds()[.uplink] == nil, "nothing left behind in the outbox")
        }
    }
}
