#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// CLOCK_MONOTONIC in nanoseconds: the clock the kernel stamps GPIO edge events with.
public func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(Nanoseconds.fromSeconds(Int64(now.tv_sec)) + Int64(now.tv_nsec))
}

/// Blocks the calling thread for `milliseconds`. Only for hardware timing on a thread that may
/// block (a reset pulse in a probe, a driver's own thread), never on the cooperative pool.
public func sleepMilliseconds(_ milliseconds: Int) {
    guard milliseconds > 0 else { return }
    var request = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR {
        request = remaining
    }
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
public func wallClockNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Nanoseconds.fromSeconds(Int64(now.tv_sec)) + Int64(now.tv_nsec)
}

/// Blocks the calling thread for `microseconds`; for a driver's short waits on its own thread.
public func sleepMicroseconds(_ microseconds: Int) {
    guard microseconds > 0 else { return }
    var request = timespec(tv_sec: microseconds / 1_000_000, tv_nsec: (microseconds % 1_000_000) * 1000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR {
        request = remaining
    }
}
