import Clocks
import HAL
import Synchronization

/// A change of a virtual line's level, with when it happened.
public struct LevelChange: Sendable, Hashable {
    public var high: Bool
    public var timestampNanoseconds: UInt64
}

/// The mock board's GPIO chip: a set of virtual lines with two sides.
///
/// The *host* side is what hotspotd sees, through `GPIOController`: lines requested as outputs
/// or inputs, edge events on an `AsyncStream`, active-low applied. The *device* side is what a
/// simulated radio or a test sees: `drive` a line as a chip's output pin would, `watch` a line
/// the host drives (a reset pin), read levels and their history. Levels are physical (high/low).
public final class VirtualGPIOChip: GPIOController {
    public let label: String

    private struct Line {
        /// The level when nobody drives it (a pull-up or pull-down on the board).
        var pull = false
        var high = false
        var holder: String?
        var hostOutput = false
        var activeLow = false
        var edges = GPIOEdgeDetection.none
        var continuation: AsyncStream<GPIOEdgeEvent>.Continuation?
        var history: [LevelChange] = []
        var watchers: [@Sendable (Bool) -> Void] = []
    }

    private let lines = Mutex<[UInt32: Line]>([:])
    /// Levels kept per line for tests; older changes are dropped.
    static let historyLimit = 1024

    public init(label: String = "mock") {
        self.label = label
    }

    // MARK: Device side

    /// Sets the level a line rests at when the host does not drive it.
    public func setPull(_ offset: UInt32, high: Bool) {
        let effects = lines.withLock { lines -> [() -> Void] in
            var line = lines[offset, default: Line()]
            line.pull = high
            var effects: [() -> Void] = []
            if !line.hostOutput {
                effects = Self.changeLevel(&line, to: high)
            }
            lines[offset] = line
            return effects
        }
        for effect in effects { effect() }
    }

    /// Drives a line from the device side, as a radio's DIO or BUSY pin does. A host input
    /// with edge detection sees the change as an edge event.
    public func drive(_ offset: UInt32, high: Bool) {
        let effects = lines.withLock { lines -> [() -> Void] in
            var line = lines[offset, default: Line()]
            let effects = Self.changeLevel(&line, to: high)
            lines[offset] = line
            return effects
        }
        for effect in effects { effect() }
    }

    /// Calls `handler` with the new level each time the line's level changes (from either side).
    /// Handlers run on the thread that made the change, outside the chip's lock.
    public func watch(_ offset: UInt32, _ handler: @escaping @Sendable (Bool) -> Void) {
        lines.withLock { $0[offset, default: Line()].watchers.append(handler) }
    }

    /// The line's physical level.
    public func level(_ offset: UInt32) -> Bool {
        lines.withLock { $0[offset]?.high ?? false }
    }

    /// The line's recent level changes, oldest first.
    public func history(_ offset: UInt32) -> [LevelChange] {
        lines.withLock { Array(($0[offset]?.history ?? []).suffix(Self.historyLimit)) }
    }

    /// Who holds the line on the host side, if anyone.
    public func holder(_ offset: UInt32) -> String? {
        lines.withLock { $0[offset]?.holder }
    }

    // MARK: Host side

    public func requestLine(_ spec: GPIOLineSpec, role: String, consumer: String, _ request: GPIOLineRequest)
        throws(HardwareError) -> any GPIOLine
    {
        let offset = spec.offset
        let (stream, continuation) = AsyncStream.makeStream(of: GPIOEdgeEvent.self)
        let effects = try lines.withLock { lines throws(HardwareError) -> [() -> Void] in
            var line = lines[offset, default: Line()]
            if let holder = line.holder {
                throw HardwareError(.busy, "\(label) line \(offset) (\(role)) is held by \(holder)")
            }
            line.holder = consumer
            line.activeLow = spec.activeLow
            var effects: [() -> Void] = []
            switch request {
            case .output(let initial):
                line.hostOutput = true
                line.edges = .none
                effects = Self.changeLevel(&line, to: initial != spec.activeLow)
            case .input(let edges):
                line.hostOutput = false
                line.edges = edges
                line.continuation = edges == .none ? nil : continuation
            }
            lines[offset] = line
            return effects
        }
        for effect in effects { effect() }
        if case .input(let edges) = request, edges != .none {
            return VirtualGPIOLine(
                chip: self, offset: offset, name: "\(role) (\(label) line \(offset))", request: request, stream: stream)
        }
        continuation.finish()
        return VirtualGPIOLine(
            chip: self, offset: offset, name: "\(role) (\(label) line \(offset))", request: request, stream: nil)
    }

    func hostValue(_ offset: UInt32) -> Bool {
        lines.withLock { lines in
            let line = lines[offset] ?? Line()
            return line.high != line.activeLow
        }
    }

    func hostSet(_ offset: UInt32, active: Bool) {
        let effects = lines.withLock { lines -> [() -> Void] in
            guard var line = lines[offset] else { return [] }
            let effects = Self.changeLevel(&line, to: active != line.activeLow)
            lines[offset] = line
            return effects
        }
        for effect in effects { effect() }
    }

    func hostRelease(_ offset: UInt32) {
        let effects = lines.withLock { lines -> [() -> Void] in
            guard var line = lines[offset] else { return [] }
            line.holder = nil
            line.continuation?.finish()
            line.continuation = nil
            line.edges = .none
            var effects: [() -> Void] = []
            if line.hostOutput {
                line.hostOutput = false
                effects = Self.changeLevel(&line, to: line.pull)
            }
            lines[offset] = line
            return effects
        }
        for effect in effects { effect() }
    }

    /// Sets a level under the lock and returns what must happen after it is released: watcher
    /// calls. Edge events are yielded here, in order, since yielding never calls back in.
    private static func changeLevel(_ line: inout Line, to high: Bool) -> [() -> Void] {
        guard line.high != high else { return [] }
        line.high = high
        let now = monotonicNanoseconds()
        line.history.append(LevelChange(high: high, timestampNanoseconds: now))
        // Trimmed in halves, not one entry per change: a change stays O(1).
        if line.history.count > 2 * historyLimit { line.history.removeFirst(line.history.count - historyLimit) }
        if let continuation = line.continuation, !line.hostOutput {
            let active = high != line.activeLow
            let edge: GPIOEdge = active ? .rising : .falling
            if line.edges.matches(edge) {
                continuation.yield(GPIOEdgeEvent(edge: edge, timestampNanoseconds: now))
            }
        }
        let watchers = line.watchers
        return watchers.map { watcher in { watcher(high) } }
    }
}

/// A line of the virtual chip, held by the host.
public final class VirtualGPIOLine: GPIOLine {
    public let name: String
    private let chip: VirtualGPIOChip
    private let offset: UInt32
    private let request: GPIOLineRequest
    private let state: Mutex<(stream: AsyncStream<GPIOEdgeEvent>?, released: Bool)>

    init(
        chip: VirtualGPIOChip, offset: UInt32, name: String, request: GPIOLineRequest,
        stream: AsyncStream<GPIOEdgeEvent>?
    ) {
        self.chip = chip
        self.offset = offset
        self.name = name
        self.request = request
        state = Mutex((stream, false))
    }

    deinit {
        release()
    }

    public func value() throws(HardwareError) -> Bool {
        try checkHeld()
        return chip.hostValue(offset)
    }

    public func setValue(_ active: Bool) throws(HardwareError) {
        try checkHeld()
        guard case .output = request else {
            throw HardwareError(.invalidRequest, "\(name) is an input; it cannot be driven")
        }
        chip.hostSet(offset, active: active)
    }

    public func edgeEvents() throws(HardwareError) -> AsyncStream<GPIOEdgeEvent> {
        try checkHeld()
        let stream = state.withLock { state -> AsyncStream<GPIOEdgeEvent>? in
            defer { state.stream = nil }
            return state.stream
        }
        guard let stream else {
            throw HardwareError(
                .invalidRequest, "\(name) was not requested with edge detection, or its events were already taken")
        }
        return stream
    }

    public func release() {
        let wasHeld = state.withLock { state -> Bool in
            defer { state.released = true }
            return !state.released
        }
        if wasHeld { chip.hostRelease(offset) }
    }

    private func checkHeld() throws(HardwareError) {
        if state.withLock({ $0.released }) {
            throw HardwareError(.invalidRequest, "\(name) has been released")
        }
    }
}
