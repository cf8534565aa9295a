import Foundation
import Messages
import TestSupport
import Testing

/// `event/stats` counts what the gateway transmits, read by an independent decoder: ChirpStack's
/// own published Python bindings of gw.proto (PyPI chirpstack-api).
@Suite(.capturingLogs, .serialized) struct StatsTests {
    /// One downlink sent (TX_ACK OK), one refused by the region before the radio: the stats
    /// report one emitted on its frequency and modulation, and both statuses.
    @Test func statsCountEveryTransmissionAndChirpStackReadsThem() async throws {
        let rig = try await FaultRig(stats: #"interval = "2s""#)
        defer { rig.killAgent() }
        try await rig.startAgent()
        let acks = try await rig.watch(event: "ack")
        let stats = try await rig.watch(event: "stats")
        #expect(await rig.pullData())
        try rig.publish(FaultRig.downlink(1, frequency: 869_525_000, sf: 9, power: 13))
        let response = try #require(await rig.nextPullResponse())
        rig.txAck(token: response.token, error: nil)
        try rig.publish(FaultRig.downlink(2, frequency: 869_640_000))
        #expect(await eventually(within: 10) { acks.messages.filter { $0 != Array("probe".utf8) }.count >= 2 })

        struct Totals: Sendable, Equatable {
            var emitted = 0, requested = 0, ok = 0, refused = 0, onFrequency = 0, sf9 = 0
        }
        @Sendable func totals() -> Totals {
            let reports =
                (try? decodeWithChirpStack(stats.messages.filter { $0 != Array("probe".utf8) }, as: "GatewayStats"))
                ?? []
            var totals = Totals()
            for report in reports {
                totals.emitted += report["tx_packets_emitted"] as? Int ?? 0
                totals.requested += report["tx_packets_received"] as? Int ?? 0
                let statuses = report["tx_packets_per_status"] as? [String: Int] ?? [:]
                totals.ok += statuses["OK"] ?? 0
                totals.refused += statuses["TX_FREQ"] ?? 0
                let frequencies = report["tx_packets_per_frequency"] as? [String: Int] ?? [:]
                totals.onFrequency += frequencies["869525000"] ?? 0
                for entry in report["tx_packets_per_modulation"] as? [[String: Any]] ?? [] {
                    let lora = (entry["modulation"] as? [String: Any])?["lora"] as? [String: Any]
                    if lora?["spreading_factor"] as? Int == 9 { totals.sf9 += entry["count"] as? Int ?? 0 }
                }
            }
            return totals
        }
        #expect(
            await eventually(within: 15) { totals().emitted >= 1 && totals().refused >= 1 }, "stats seen: \(totals())")
        let seen = totals()
        #expect(seen.emitted == 1 && seen.ok == 1 && seen.onFrequency == 1 && seen.sf9 == 1, "\(seen)")
        #expect(seen.requested == 2 && seen.refused == 1, "\(seen)")
        #expect(rig.stopAgent() == 0)
    }
}
