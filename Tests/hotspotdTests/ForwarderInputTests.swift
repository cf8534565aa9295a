import Agent
import ChirpStack
import Clocks
import Foundation
import TestSupport
import Testing
import Transport

/// What a packet forwarder sends that the agent cannot take is visible where an owner looks:
/// the journal (notice, with the reason), `hotspotd status`, and the stats.
@Suite(.capturingLogs, .serialized) struct ForwarderInputTests {
    @Test func refusedRxpksAreSaidAndCountedWhileGoodFramesFlow() async throws {
        let rig = try await FaultRig()
        defer { rig.killAgent() }
        try await rig.startAgent()
        // A forwarder that leaves out rssi: every one of its packets is refused.
        for index in 0..<5 {
            rig.pushData(
                json:
                    #"""
                    {"rxpk":[{"tmst":1,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","codr":"4/5","lsnr":\#
                    9.5,"size":4,"data":"QAECAw=="}]}
                    """#,
                token: 0xF000 + UInt16(index))
        }
        let good = await rig.stream(for: 1)
        #expect(good.acknowledged == good.sent)
        let counted = await eventually(within: 20) {
            let status = try? await runHotspotd(["status", "--json", "--data-dir", rig.dataDirectory], in: "/")
            return status?.stdout.contains(#""frames_malformed":5"#) == true
        }
        #expect(counted, "status counts the refused packets")
        let log = tail(of: rig.logFile, lines: 400)
        #expect(log.contains("notice"), "\(log)")
        #expect(log.contains("rxpk refused: rxpk has no rssi"))
        _ = await eventually(within: 30) { await rig.ledgerProblem() == nil }
        let problem = await rig.ledgerProblem()
        #expect(problem == nil, "the good frames went through")
        #expect(rig.stopAgent() == 0)
    }
}
