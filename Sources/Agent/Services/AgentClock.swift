import Clocks

/// The two clocks the agent's services read: the wall clock (what a frame, a report or a
/// receipt is stamped with) and a monotonic one (how long since something happened). Injected,
/// so that tests control time.
public protocol AgentClock: Sendable {
    /// Nanoseconds since the Unix epoch.
    func wallClock() -> Int64
    /// Time since an arbitrary fixed point; never goes back.
    func monotonic() -> Duration
}

/// The system's clocks: CLOCK_REALTIME and CLOCK_MONOTONIC.
public struct SystemClock: AgentClock {
    public init() {}
    public func wallClock() -> Int64 { wallClockNanoseconds() }
    public func monotonic() -> Duration { .nanoseconds(monotonicNanoseconds()) }
}
