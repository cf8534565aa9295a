import ChirpStack
import Foundation
import Messages
import SwiftProtobuf
import TestSupport
import Testing

extension AgentProcessTests {
    /// `[filters]` end to end: `hotspotd run` behind a forwarder, a real mosquitto; a denied
    /// DevAddr is never forwarded nor charged, and the count says so in stats and status.
    @Suite(.capturingLogs, .serialized) struct FilterTests {
        @Test(.timeLimit(.minutes(3)))
        func aDeniedDevAddrIsNeitherForwardedNorChargedAndIsCounted() async throws {
            // bob's sensor is 26011001; alice's 26011000, carol's 26011002, dave's 26011003.
            let rig = try await FaultRig(
                stats: "interval = \"1s\"",
                filters: """
                    dev_addr_prefixes = ["26011000/30"]
                    deny_dev_addr_prefixes = ["26011001/32"]
                    """)
            let stats = try await rig.watch(event: "stats")
            try await rig.startAgent()
            // A PUSH_ACK later than the rig's short look still counts: the frames are what matter.
            await rig.push(8)
            await rig.push(8)
            // Twelve of the sixteen are forwarded: bob's four are left out (dave's owner has credit
            // for the first few only, so some of dave's may be refused for credit instead).
            #expect(
                await eventually(within: 30) {
                    Set(rig.published().values.map(\.owner)).isSuperset(of: ["alice", "carol"])
                })
            #expect(
                await eventually(within: 30) {
                    stats.messages.contains { bytes in
                        (try? Gw_GatewayStats(serializedBytes: bytes))?.metadata["filtered_dev_addr"] == "4"
                    }
                })
            #expect(rig.stopAgent() == 0)
            #expect(!rig.published().values.contains { $0.owner == "bob" })
            let debited = try await rig.debited()
            #expect(!debited.charges.values.contains { $0.owner == "bob" } && debited.balances["bob"] == 1_000_000)
            let status = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: rig.dataDirectory + "/status.json"))) as? [String: Any])
            #expect((status["uplinks_filtered"] as? [String: Int])?["filtered_dev_addr"] == 4)
        }
    }
}
