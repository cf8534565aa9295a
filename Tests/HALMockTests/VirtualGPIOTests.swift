import Clocks
import HAL
import Synchronization
import TestSupport
import Testing

@testable import HALMock

@Suite(.capturingLogs) struct VirtualGPIOTests {
    let chip = VirtualGPIOChip()

    @Test func edgeEventsReachAnAsyncConsumerInOrder() async throws {
        let line = try chip.requestLine(
            GPIOLineSpec(chips: ["mock"], offset: 4), role: "dio0", consumer: "test", .input(edges: .both))
        let events = try line.edgeEvents()
        let consumer = Task {
            var seen: [GPIOEdgeEvent] = []
            for await event in events {
                seen.append(event)
                if seen.count == 6 { break }
            }
            return seen
        }
        for _ in 0..<3 {
            chip.drive(4, high: true)
            chip.drive(4, high: false)
        }
        let seen = try await withTimeout { await consumer.value }
        #expect(seen.map(\.edge) == [.rising, .falling, .rising, .falling, .rising, .falling])
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0.timestampNanoseconds <= $1.timestampNanoseconds })
    }

    @Test func risingOnlyDetectionSkipsFallingEdges() async throws {
        let line = try chip.requestLine(
            GPIOLineSpec(chips: ["mock"], offset: 4), role: "dio0", consumer: "test", .input(edges: .rising))
        let events = try line.edgeEvents()
        chip.drive(4, high: true)
        chip.drive(4, high: false)
        chip.drive(4, high: true)
        line.release()
        var edges: [GPIOEdge] = []
        for await event in events { edges.append(event.edge) }
        #expect(edges == [.rising, .rising])
    }

    @Test func activeLowInvertsValuesAndEdges() async throws {
        let input = try chip.requestLine(
            GPIOLineSpec(chips: ["mock"], offset: 5, activeLow: true), role: "irq", consumer: "test",
            .input(edges: .both))
        let events = try input.edgeEvents()
        chip.drive(5, high: true)
        #expect(try input.value() == false)
        chip.drive(5, high: false)
        #expect(try input.value() == true)
        input.release()
        var edges: [GPIOEdge] = []
        for await event in events { edges.append(event.edge) }
        #expect(edges == [.falling, .rising])

        let output = try chip.requestLine(
            GPIOLineSpec(chips: ["mock"], offset: 6, activeLow: true), role: "reset", consumer: "test",
            .output(initial: false))
        #expect(chip.level(6) == true, "inactive active-low output is high")
        try output.setValue(true)
        #expect(chip.level(6) == false)
        #expect(chip.history(6).map(\.high) == [true, false])
    }

    @Test func aLineCanBeHeldOnceAndReturnsToItsPullWhenReleased() throws {
        chip.setPull(7, high: true)
        let line = try chip.requestLine(
            GPIOLineSpec(chips: ["mock"], offset: 7), role: "reset", consumer: "first", .output(initial: false))
        #expect(chip.level(7) == false)
        #expect(chip.holder(7) == "first")
        #expect(throws: HardwareError.self) {
            try chip.requestLine(
                GPIOLineSpec(chips: ["mock"], offset: 7), role: "reset", consumer: "second", .input(edges: .none))
        }
        line.release()
        #expect(chip.level(7) == true)
        #expect(chip.holder(7) == nil)
        #expect(throws: HardwareError.self) { try line.setValue(true) }
    }

    @Test func inputsCannotBeDrivenAndEventsNeedEdgeDetection() throws {
        let line = try chip.requestLine(
            GPIOLineSpec(chips: ["mock"], offset: 8), role: "busy", consumer: "test", .input(edges: .none))
        #expect(throws: HardwareError.self) { try line.setValue(true) }
        #expect(throws: HardwareError.self) { try line.edgeEvents() }
    }

    @Test func watchersSeeTheHostDriveALine() throws {
        let seen = LevelLog()
        chip.watch(9) { seen.append($0) }
        let line = try chip.requestLine(
            GPIOLineSpec(chips: ["mock"], offset: 9), role: "reset", consumer: "test", .output(initial: true))
        try line.setValue(false)
        #expect(seen.levels == [true, false])
    }
}

final class LevelLog: Sendable {
    private let storage = Mutex<[Bool]>([])
    func append(_ level: Bool) { storage.withLock { $0.append(level) } }
    var levels: [Bool] { storage.withLock { $0 } }
}
