import Clocks
import HAL
import Logging
import ServiceLifecycle
import Synchronization

/// What the status LED shows.
public enum LightPattern: String, Sendable, Equatable {
    /// Running, the broker connected, radio and secure element answering.
    case on
    /// Running, but no broker: uplinks wait in the outbox (1 s on, 1 s off).
    case slowBlink = "slow blink"
    /// The radio or the secure element does not answer (125 ms on, 125 ms off).
    case fastBlink = "fast blink"
    /// Stopped.
    case off

    /// Whether the LED is lit `milliseconds` into the pattern.
    public func lit(atMilliseconds milliseconds: Int64) -> Bool {
        switch self {
        case .on: true
        case .off: false
        case .slowBlink: (milliseconds / 1000) % 2 == 0
        case .fastBlink: (milliseconds / 125) % 2 == 0
        }
    }

    /// The pattern for the agent's state: a fault wins over a missing broker.
    public static func showing(brokerConnected: Bool, radioAnswering: Bool, secureElementAnswering: Bool) -> Self {
        if !radioAnswering || !secureElementAnswering { return .fastBlink }
        return brokerConnected ? .on : .slowBlink
    }
}

/// The agent's state as the LED and the button see it.
public struct LightState: Sendable, Equatable {
    public var brokerConnected: Bool
    public var radioAnswering: Bool
    public var secureElementAnswering: Bool

    public init(brokerConnected: Bool, radioAnswering: Bool, secureElementAnswering: Bool) {
        self.brokerConnected = brokerConnected
        self.radioAnswering = radioAnswering
        self.secureElementAnswering = secureElementAnswering
    }

    public var pattern: LightPattern {
        .showing(
            brokerConnected: brokerConnected, radioAnswering: radioAnswering,
            secureElementAnswering: secureElementAnswering)
    }
}

/// The hotspot's status LED and button, where its board has them: the LED shows the agent's
/// state at a glance (`LightPattern`), and a press of the button logs a one-line diagnostic.
/// The LED goes off when the agent stops.
public struct StatusLight: Service {
    private let led: (any GPIOLine)?
    private let button: (any GPIOLine)?
    private let state: @Sendable () async -> LightState
    private let diagnostic: @Sendable () async -> String
    private let logger: Logger
    /// How often the state is looked at, and the blink's resolution.
    public static let tick: Duration = .milliseconds(125)

    public init(
        led: (any GPIOLine)?, button: (any GPIOLine)?, logger: Logger,
        state: @escaping @Sendable () async -> LightState, diagnostic: @escaping @Sendable () async -> String
    ) {
        self.led = led
        self.button = button
        self.logger = logger
        self.state = state
        self.diagnostic = diagnostic
    }

    public func run() async {
        let events = try? button?.edgeEvents()
        await withTaskGroup(of: Void.self) { group in
            if let events {
                group.addTask { await watchButton(events) }
            }
            await drive()
            group.cancelAll()
        }
    }

    private func drive() async {
        var shown: Bool?
        var pattern = LightPattern.off
        var since: UInt64 = 0
        var ticks = 0
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            if ticks % 8 == 0 {
                let next = await state().pattern
                if next != pattern {
                    if pattern != .off { logger.info("status LED: \(next.rawValue)") }
                    pattern = next
                    since = monotonicNanoseconds()
                }
            }
            ticks += 1
            let lit = pattern.lit(atMilliseconds: Int64((monotonicNanoseconds() - since) / 1_000_000))
            if lit != shown {
                do {
                    try led?.setValue(lit)
                    shown = lit
                } catch {
                    logger.warning("the status LED cannot be set: \(error.message)")
                    shown = lit
                }
            }
            guard (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: Self.tick) })) != nil else {
                break
            }
        }
        try? led?.setValue(false)
    }

    /// A press is the line becoming active; presses closer than half a second are one (bounce).
    /// A line that keeps toggling (a broken button, a floating input) writes five lines, then
    /// one a minute, each saying how many presses went unsaid.
    private func watchButton(_ events: AsyncStream<GPIOEdgeEvent>) async {
        let limiter = RefusalLimiter(burst: 5, perSecond: 1.0 / 60)
        var last: UInt64 = 0
        for await event in events where event.edge == .rising {
            guard last == 0 || event.timestampNanoseconds &- last >= 500_000_000 else { continue }
            last = event.timestampNanoseconds
            let (report, unsaid) = limiter.admit()
            guard report else { continue }
            let line = await diagnostic()
            logger.notice("button: \(line)\(unsaid > 0 ? " (\(unsaid) presses not logged before this one)" : "")")
        }
    }
}
