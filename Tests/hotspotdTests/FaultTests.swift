import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Faults a hotspot meets in the field, played against `hotspotd run` in a process of its own,
/// a real mosquitto and a real SQLite store. After each, the ledger must hold: every uplink the
/// store debited was published (by its sequence number, at least once), and every balance is
/// the credits granted less the credits on the published uplinks.
@Suite(.serialized) struct FaultTests {
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
        }
        await stream.value
        #expect(rig.agentIsRunning)
        #expect(rig.framesAcknowledged > 1_000, "the forwarder's uplinks were acknowledged throughout")
        _ = await eventually(within: 60) { await rig.ledgerProblem() == nil }
        let problem = await rig.ledgerProblem()
        #expect(problem == nil, "seed \(seed)")
        let debited = try await rig.debited()
        #expect(debited.charges.count > 1_000)
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
            await stream.value
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
