import Agent
import Clocks
import HAL
import HALMock
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

/// The status LED and button on the mock board's virtual GPIO, driven by the service the
/// agent runs.
@Suite(.capturingLogs, .serialized) struct StatusLightTests {
    static let profile = """
        name = "mock-with-light"
        radio = "sx1276"
        hal = "mock"
        [spi]
        device = "mock:spidev0.0"
        speed_hz = 8_000_000
        [gpio]
        chip = "mock"
        reset = { offset = 17, active_low = true }
        dio0 = { offset = 4 }
        status_led = { offset = 26 }
        button = { offset = 5 }
        """

    @Test func patternsAreWhatTheREADMESays() {
        #expect(LightPattern.showing(brokerConnected: true, radioAnswering: true, secureElementAnswering: true) == .on)
        #expect(
            LightPattern.showing(brokerConnected: false, radioAnswering: true, secureElementAnswering: true)
                == .slowBlink)
        #expect(
            LightPattern.showing(brokerConnected: true, radioAnswering: false, secureElementAnswering: true)
                == .fastBlink)
        #expect(
            LightPattern.showing(brokerConnected: false, radioAnswering: true, secureElementAnswering: false)
                == .fastBlink)
        #expect(
            (0..<8).map { LightPattern.slowBlink.lit(atMilliseconds: Int64($0) * 500) } == [
                true, true, false, false, true, true, false, false,
            ])
        #expect(
            (0..<4).map { LightPattern.fastBlink.lit(atMilliseconds: Int64($0) * 125) } == [true, false, true, false])
    }

    @Test(.timeLimit(.minutes(1)))
    func theLEDFollowsTheAgentsStateAndTheButtonTellsIt() async throws {
        let profile = try BoardProfile.parse(Self.profile, file: "mock-with-light.toml")
        let board = try MockBoard(profile: profile, air: Air(timeScale: 0))
        let led = try #require(try board.requestLineIfPresent(.statusLED, .output(initial: false)))
        let button = try #require(try board.requestLineIfPresent(.button, .input(edges: .both)))
        let state = Mutex(LightState(brokerConnected: true, radioAnswering: true, secureElementAnswering: true))
        let log = CapturedLog()
        let light = StatusLight(
            led: led, button: button, logger: log.logger, state: { state.withLock { $0 } },
            diagnostic: { "running, broker connected, last uplink none yet" })
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [.init(service: light)], logger: log.logger))
        let running = Task { try await group.run() }
        let gpio = board.virtualGPIO

        /// The LED's level changes from `start` on, as intervals between them in milliseconds.
        @Sendable func intervals(since start: Int) -> [UInt64] {
            let changes = gpio.history(26).dropFirst(start).map(\.timestampNanoseconds)
            return zip(changes, changes.dropFirst()).map { ($1 - $0) / 1_000_000 }
        }

        // Running and connected: on, steadily.
        #expect(await eventually(within: 5) { gpio.level(26) })
        let steady = gpio.history(26).count
        try await Task.sleep(for: .milliseconds(1500))
        #expect(gpio.history(26).count == steady)
        // The broker goes away: a slow blink, a change a second. A loaded machine may make the
        // changes late, never early, so the intervals are at least a second.
        state.withLock { $0.brokerConnected = false }
        let slowStart = gpio.history(26).count
        #expect(await eventually(within: 30) { intervals(since: slowStart).count >= 3 })
        let slow = intervals(since: slowStart)
        #expect(slow.allSatisfy { $0 >= 900 }, "slow blink intervals: \(slow) ms")
        // The radio stops answering: a fast blink, a change every 125 ms, which the slow blink
        // never makes.
        state.withLock { $0.radioAnswering = false }
        let fastStart = gpio.history(26).count
        #expect(await eventually(within: 30) { intervals(since: fastStart).contains { $0 < 600 } })
        // The button, pressed: one diagnostic line, whatever the bounce.
        for high in [true, false, true, false] { gpio.drive(5, high: high) }
        #expect(await eventually(within: 5) { log.all.contains { $0.message.hasPrefix("button: running") } })
        #expect(log.all.filter { $0.message.hasPrefix("button:") }.count == 1)
        // Stopped: off.
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(!gpio.level(26))
    }
}
