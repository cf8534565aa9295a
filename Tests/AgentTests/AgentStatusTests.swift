import ChirpStack
import Clocks
import Foundation
import TestSupport
import Testing

@testable import Agent

@Suite(.capturingLogs) struct AgentStatusTests {
    let status = AgentStatus(
        pid: 4242, version: "0.1.0", gatewayID: "0016c001ff10a235", board: "mock", region: "EU868",
        broker: "mqtt://127.0.0.1:1883",
        startedAt: 1_000, updatedAt: 2_000, updateIntervalSeconds: 10, running: true, radioAnswering: true,
        brokerConnected: true,
        framesReceived: 7, uplinksForwarded: 5, uplinksRefused: 2, outboxDepth: 3, lastUplinkAt: 1_990,
        lastBeaconAt: nil, lastWitnessAt: 1_500
    )

    @Test func livenessFromTheFileAndTheProcess() {
        #expect(status.liveness(nowUnixSeconds: 2_015) { _ in true } == .running)
        #expect(status.liveness(nowUnixSeconds: 2_021) { _ in true } == .notResponding, "two periods without a report")
        #expect(status.liveness(nowUnixSeconds: 2_005) { _ in false } == .died)
        var stopped = status
        stopped.running = false
        #expect(stopped.liveness(nowUnixSeconds: 9_999) { _ in false } == .stopped)
    }

    @Test func theFileRoundTripsWithSnakeCaseKeys() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "status-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try status.write(dataDirectory: directory)
        #expect(try AgentStatus.read(dataDirectory: directory) == status)
        let text = try String(contentsOfFile: AgentStatus.path(dataDirectory: directory), encoding: .utf8)
        #expect(text.contains("\"outbox_depth\" : 3"))
        #expect(text.contains("\"last_witness_at\" : 1500"))
        #expect(!text.contains("last_beacon_at"), "an unknown time is left out")
    }
}
