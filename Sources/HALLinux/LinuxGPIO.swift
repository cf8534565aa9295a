import CGPIO
import Clocks
import HAL
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// GPIO through the kernel's character device and libgpiod (1.x or 2.x, chosen at build time).
public struct LinuxGPIOController: GPIOController {
    public init() {}

    /// The libgpiod API this build uses: "1" or "2".
    public static var libgpiodAPI: String { String(cString: hs_gpio_api()) }

    /// What the GPIO chips under /dev are: the ones that opened, with label and size, and the
    /// errno of each that did not.
    public struct Survey: Sendable {
        public var chips: [GPIOChipInfo] = []
        public var failures: [(path: String, errno: Int32)] = []
    }

    /// Every GPIO chip under /dev.
    public static func survey() -> Survey {
        var survey = Survey()
        guard let directory = opendir("/dev") else { return survey }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name.hasPrefix("gpiochip") { names.append(name) }
        }
        for name in names.sorted() {
            let path = "/dev/" + name
            guard let chip = hs_gpio_chip_open(path) else {
                survey.failures.append((path, errno))
                continue
            }
            defer { hs_gpio_chip_close(chip) }
            var label = [CChar](repeating: 0, count: 64)
            let result = hs_gpio_chip_label(chip, &label, label.count)
            guard result == 0 else {
                survey.failures.append((path, -result))
                continue
            }
            let lineCount = Int(hs_gpio_chip_line_count(chip))
            let text = String(decoding: label.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            survey.chips.append(GPIOChipInfo(path: path, label: text, lineCount: max(lineCount, 0)))
        }
        return survey
    }

    /// Picks the chip for a line from a survey. When no chip matches and some could not be
    /// opened, the reason is theirs: a permission problem must not read as "no such chip".
    public static func locate(_ spec: GPIOLineSpec, role: String, in survey: Survey) throws(HardwareError)
        -> GPIOChipInfo
    {
        if let info = GPIOChipLocator.locate(spec.chips, among: survey.chips) {
            guard Int(spec.offset) < info.lineCount else {
                throw HardwareError(
                    .invalidRequest,
                    """
                    \(info.path) \"\(info.label)\" has \(info.lineCount) lines; the \(role) line's offset \
                    \(spec.offset) is not one of them
                    """
                )
            }
            return info
        }
        if let denied = survey.failures.first(where: { $0.errno == EACCES || $0.errno == EPERM })
            ?? survey.failures.first
        {
            throw DeviceErrorMapping.gpio(errno: denied.errno, path: denied.path, line: nil, role: role)
        }
        throw GPIOChipLocator.notFound(spec.chips, role: role, among: survey.chips)
    }

    public func requestLine(_ spec: GPIOLineSpec, role: String, consumer: String, _ request: GPIOLineRequest)
        throws(HardwareError) -> any GPIOLine
    {
        let info = try Self.locate(spec, role: role, in: Self.survey())
        return try LinuxGPIOLine(chipPath: info.path, spec: spec, role: role, consumer: consumer, request: request)
    }
}

/// One line held through libgpiod. Edge events are read on a dedicated thread, which blocks in
/// the kernel's wait and hands each event to an `AsyncStream`.
public final class LinuxGPIOLine: GPIOLine, @unchecked Sendable {
    // `chip` and `line` are C handles. libgpiod is not thread-safe per handle, so every call on
    // them goes through `lock`, except the event thread's wait and read, which only run while
    // the line is held and stop (joined) before release.
    public let name: String
    private let lock = Mutex(())
    private var chip: OpaquePointer?
    private var line: OpaquePointer?
    private let request: GPIOLineRequest
    private let stopping = StopFlag()
    private var eventThread: DedicatedThread?
    private var streamHandedOut = false

    init(chipPath: String, spec: GPIOLineSpec, role: String, consumer: String, request: GPIOLineRequest)
        throws(HardwareError)
    {
        name = "\(role) (\(chipPath) line \(spec.offset))"
        self.request = request
        guard let chip = hs_gpio_chip_open(chipPath) else {
            throw DeviceErrorMapping.gpio(errno: errno, path: chipPath, line: nil, role: role)
        }
        let direction: Int32
        let edges: Int32
        let initial: Int32
        switch request {
        case .output(let value):
            direction = Int32(HS_GPIO_OUTPUT.rawValue)
            edges = Int32(HS_GPIO_EDGE_NONE.rawValue)
            initial = value ? 1 : 0
        case .input(let detection):
            direction = Int32(HS_GPIO_INPUT.rawValue)
            switch detection {
            case .none: edges = Int32(HS_GPIO_EDGE_NONE.rawValue)
            case .rising: edges = Int32(HS_GPIO_EDGE_RISING.rawValue)
            case .falling: edges = Int32(HS_GPIO_EDGE_FALLING.rawValue)
            case .both: edges = Int32(HS_GPIO_EDGE_BOTH.rawValue)
            }
            initial = 0
        }
        guard let line = hs_gpio_request(chip, spec.offset, consumer, direction, edges, spec.activeLow ? 1 : 0, initial)
        else {
            let code = errno
            hs_gpio_chip_close(chip)
            throw DeviceErrorMapping.gpio(errno: code, path: chipPath, line: spec.offset, role: role)
        }
        self.chip = chip
        self.line = line
    }

    deinit {
        release()
    }

    public func value() throws(HardwareError) -> Bool {
        let result: Int32 = lock.withLock { _ in
            guard let line else { return -EBADF }
            return hs_gpio_get(line)
        }
        guard result >= 0 else { throw failure(-result, "read") }
        return result == 1
    }

    public func setValue(_ active: Bool) throws(HardwareError) {
        guard case .output = request else {
            throw HardwareError(.invalidRequest, "\(name) is an input; it cannot be driven")
        }
        let result: Int32 = lock.withLock { _ in
            guard let line else { return -EBADF }
            return hs_gpio_set(line, active ? 1 : 0)
        }
        guard result == 0 else { throw failure(-result, "set") }
    }

    public func edgeEvents() throws(HardwareError) -> AsyncStream<GPIOEdgeEvent> {
        guard case .input(let detection) = request, detection != .none else {
            throw HardwareError(.invalidRequest, "\(name) was not requested with edge detection")
        }
        let (stream, continuation) = AsyncStream.makeStream(of: GPIOEdgeEvent.self)
        let stopping = self.stopping
        // Checking the handle and starting the thread happen under one lock, so a concurrent
        // release() either comes first (and this fails) or finds the thread to join.
        try lock.withLock { _ throws(HardwareError) in
            guard let line, !stopping.isSet else {
                throw HardwareError(.invalidRequest, "\(name) has been released")
            }
            guard !streamHandedOut else {
                throw HardwareError(.invalidRequest, "\(name): edge events can be taken once")
            }
            let pointer = UnsafeSendablePointer(line)
            eventThread = try HardwareError.io { () throws(ThreadError) in
                try DedicatedThread(name: "gpio-events") {
                    while !stopping.isSet {
                        let ready = hs_gpio_wait_event(pointer.value, 100_000_000)
                        if ready < 0 {
                            if -ready == EINTR { continue }
                            break
                        }
                        if ready == 0 { continue }
                        var rising: Int32 = 0
                        var timestamp: UInt64 = 0
                        if hs_gpio_read_event(pointer.value, &rising, &timestamp) == 0 {
                            continuation.yield(
                                GPIOEdgeEvent(edge: rising != 0 ? .rising : .falling, timestampNanoseconds: timestamp))
                        }
                    }
                    continuation.finish()
                }
            }
            streamHandedOut = true
        }
        return stream
    }

    public func release() {
        // Setting the flag under the lock orders it after any thread start in edgeEvents().
        let thread = lock.withLock { _ in
            stopping.set()
            return eventThread
        }
        thread?.join()
        lock.withLock { _ in
            if let line { hs_gpio_release(line) }
            if let chip { hs_gpio_chip_close(chip) }
            line = nil
            chip = nil
            eventThread = nil
        }
    }

    private func failure(_ code: Int32, _ operation: String) -> HardwareError {
        if code == EBADF {
            return HardwareError(.invalidRequest, "\(name) has been released")
        }
        return HardwareError(.io, "\(operation) \(name): \(String(cString: strerror(code)))", errno: code)
    }
}

/// A C handle passed to the event thread. Safe because the thread is joined before the handle
/// is released, and only that thread waits and reads on it.
struct UnsafeSendablePointer: @unchecked Sendable {
    let value: OpaquePointer
    init(_ value: OpaquePointer) { self.value = value }
}

/// A flag the owner sets once to ask a dedicated thread to stop.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}
