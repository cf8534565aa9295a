/// A logical edge on a GPIO line: `rising` is the line becoming active (for an active-low line,
/// its voltage falling).
public enum GPIOEdge: Sendable, Hashable {
    case rising
    case falling
}

/// Which edges an input reports.
public enum GPIOEdgeDetection: Sendable, Hashable {
    case none, rising, falling, both

    public func matches(_ edge: GPIOEdge) -> Bool {
        switch (self, edge) {
        case (.both, _), (.rising, .rising), (.falling, .falling): true
        default: false
        }
    }
}

/// An edge seen on an input line, stamped with CLOCK_MONOTONIC in nanoseconds (the kernel's
/// own stamp on Linux), so that a radio driver can time a reception to the microsecond.
public struct GPIOEdgeEvent: Sendable, Hashable {
    public var edge: GPIOEdge
    public var timestampNanoseconds: UInt64

    public init(edge: GPIOEdge, timestampNanoseconds: UInt64) {
        self.edge = edge
        self.timestampNanoseconds = timestampNanoseconds
    }
}

/// How a line is requested.
public enum GPIOLineRequest: Sendable, Hashable {
    /// An output, driven to `initial` (logical) at once.
    case output(initial: Bool)
    /// An input, optionally reporting edges through `edgeEvents()`.
    case input(edges: GPIOEdgeDetection)
}

/// One GPIO line held by this process. Values are logical: `true` is active, and the line's
/// active-low flag decides what that means in volts. Released on `release()` or deinit.
public protocol GPIOLine: AnyObject, Sendable {
    /// What the line is for, e.g. "reset (gpiochip0 line 17)".
    var name: String { get }

    /// Reads the logical value.
    func value() throws(HardwareError) -> Bool

    /// Drives an output line.
    func setValue(_ active: Bool) throws(HardwareError)

    /// The edges of an input requested with edge detection, in the order they happened.
    /// May be called once; the stream ends when the line is released.
    func edgeEvents() throws(HardwareError) -> AsyncStream<GPIOEdgeEvent>

    /// Gives the line back to the kernel; further calls fail.
    func release()
}

/// Where a line lives: the chips to try (labels such as "pinctrl-bcm2711" or paths such as
/// "/dev/gpiochip0", first found wins), the offset on that chip, and its polarity.
public struct GPIOLineSpec: Hashable, Sendable {
    public var chips: [String]
    public var offset: UInt32
    public var activeLow: Bool

    public init(chips: [String], offset: UInt32, activeLow: Bool = false) {
        self.chips = chips
        self.offset = offset
        self.activeLow = activeLow
    }
}

/// A source of GPIO lines: the Linux character device, or the mock board's virtual chip.
public protocol GPIOController: Sendable {
    /// Requests one line for this process; `consumer` is the name other tools (gpioinfo) show.
    func requestLine(_ spec: GPIOLineSpec, role: String, consumer: String, _ request: GPIOLineRequest)
        throws(HardwareError) -> any GPIOLine
}
