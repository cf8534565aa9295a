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

        /// Level changes of the LED over `seconds`, from now.
        func changes(over seconds: Double) async throws -> Int {
            let before = gpio.history(26).count
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            return gpio.history(26).count - before
        }

        // Running and connected: on, steadily.
        #expect(await eventually(within: 5) { gpio.level(26) })
        #expect(try await changes(over: 1.5) == 0)
        // The broker goes away: a slow blink, about a change a second.
        state.withLock { $0.brokerConnected = false }
        let slow = try await changes(over: 4.2)
        #expect((2...6).contains(slow), "slow blink: \(slow) changes in 4.2 s")
        // The radio stops answering: a fast blink, about eight changes a second (a slow blink
        // makes at most three in two seconds; a loaded machine slows the ticks, hence the margin).
        state.withLock { $0.radioAnswering = false }
        try await Task.sleep(for: .milliseconds(1200))
        let fast = try await changes(over: 2)
        #expect(fast >= 4, "fast blink: \(fast) changes in 2 s")
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
