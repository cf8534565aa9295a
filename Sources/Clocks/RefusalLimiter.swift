import Synchronization

/// Caps how many refusals of input from outside are reported. Anyone who can publish on the
/// broker can send garbage, or replay a command they saw, as fast as the broker lets them;
/// reporting each refusal would let them fill the outbox (whose cap then pushes out uplinks
/// waiting for delivery) and the journal. A token bucket: `burst` reports at once, then
/// `perSecond`; the refusals beyond are counted and named in the next report.
public final class RefusalLimiter: Sendable {
    private struct State {
        var tokens: Double
        var updated: UInt64
        var suppressed = 0
        var suppressedTotal = 0
    }

    public let burst: Int
    public let perSecond: Double
    private let state: Mutex<State>
    private let now: @Sendable () -> UInt64

    public init(burst: Int = 60, perSecond: Double = 1, now: @escaping @Sendable () -> UInt64 = monotonicNanoseconds) {
        self.burst = burst
        self.perSecond = perSecond
        self.now = now
        state = Mutex(State(tokens: Double(burst), updated: now()))
    }

    /// Whether to report this refusal, and if so how many went unreported since the last one.
    public func admit() -> (report: Bool, unreportedBefore: Int) {
        state.withLock { state in
            let time = now()
            let elapsed = Double(time >= state.updated ? time - state.updated : 0) / 1e9
            state.tokens = min(Double(burst), state.tokens + elapsed * perSecond)
            state.updated = time
            guard state.tokens >= 1 else {
                state.suppressed += 1
                state.suppressedTotal += 1
                return (false, 0)
            }
            state.tokens -= 1
            defer { state.suppressed = 0 }
            return (true, state.suppressed)
        }
    }

    /// Refusals not reported since the start.
    public var unreported: Int {
        state.withLock { $0.suppressedTotal }
    }
}
