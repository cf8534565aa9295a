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

        /// The times of the LED's level changes from the `start`th on, in milliseconds.
        @Sendable func changes(since start: Int) -> [UInt64] {
            gpio.history(26).dropFirst(start).map { $0.timestampNanoseconds / 1_000_000 }
        }

        // Running and connected: on, steadily.
        #expect(await eventually(within: 5) { gpio.level(26) })
        let steady = gpio.history(26).count
        try await Task.sleep(for: .milliseconds(1500))
        #expect(gpio.history(26).count == steady)
        // The broker goes away: a slow blink, a change a second. A loaded machine may look late
        // and miss a change, never add one: n changes take at least n − 2 seconds.
        state.withLock { $0.brokerConnected = false }
        let slowStart = gpio.history(26).count
        #expect(await eventually(within: 30) { changes(since: slowStart).count >= 4 })
        let slow = changes(since: slowStart)
        #expect(UInt64(slow.count - 2) * 1000 <= slow.last! - slow.first! + 50, "slow blink changes at \(slow) ms")
        // The radio stops answering: a fast blink, a change every 125 ms: twelve changes in far
        // less than the eleven seconds a slow blink would need.
        state.withLock { $0.radioAnswering = false }
        let fastStart = gpio.history(26).count
        #expect(await eventually(within: 30) { changes(since: fastStart).count >= 12 })
        let fast = changes(since: fastStart).prefix(12)
        #expect(fast.last! - fast.first! < 9000, "fast blink changes at \(Array(fast)) ms")
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

extension StatusLightTests {
    /// A button line that keeps toggling (broken, floating) cannot fill the journal: five
    /// lines, then one a minute.
    @Test(.timeLimit(.minutes(1)))
    func aTogglingButtonWritesFiveLinesThenFewer() async throws {
        let profile = try BoardProfile.parse(Self.profile, file: "mock-with-light.toml")
        let board = try MockBoard(profile: profile, air: Air(timeScale: 0))
        let button = try #require(try board.requestLineIfPresent(.button, .input(edges: .both)))
        let log = CapturedLog()
        let light = StatusLight(
            led: nil, button: button, logger: log.logger,
            state: { LightState(brokerConnected: true, radioAnswering: true, secureElementAnswering: true) },
            diagnostic: { "running" })
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [.init(service: light)], logger: log.logger))
        let running = Task { try await group.run() }
        try await Task.sleep(for: .milliseconds(200))
        for _ in 0..<12 {
            board.virtualGPIO.drive(5, high: true)
            board.virtualGPIO.drive(5, high: false)
            try await Task.sleep(for: .milliseconds(520))
        }
        try await Task.sleep(for: .milliseconds(300))
        await group.triggerGracefulShutdown()
        try await running.value
        let lines = log.all.filter { $0.message.hasPrefix("button:") }
        #expect(lines.count == 5, "\(lines.map(\.message))")
    }
}
