import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A POSIX thread of its own for a blocking C call (a gpiod event wait, a mosquitto loop), so
/// that it never blocks Swift's cooperative pool. The body should return when asked to stop.
public final class DedicatedThread: @unchecked Sendable {
    // The handle is written once, in init; `joined` guards the one pthread_join.
    private let thread: pthread_t
    private let joined = Mutex(false)

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts `body` on a new thread; `name` appears in errors.
    public init(name: String, _ body: @escaping @Sendable () -> Void) throws(ThreadError) {
        let box = Unmanaged.passRetained(Body(body))
        #if canImport(Darwin)
            var handle: pthread_t? = nil
        #else
            var handle = pthread_t()
        #endif
        let result = pthread_create(
            &handle, nil,
            { raw in
                let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
                body.run()
                return nil
            }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw ThreadError("cannot start thread \(name): \(String(cString: strerror(result)))", errno: result)
        }
        #if canImport(Darwin)
            thread = handle!
        #else
            thread = handle
        #endif
    }

    /// Lets the thread end on its own, with no one to join it.
    public func detach() {
        joined.withLock { joined in
            guard !joined else { return }
            joined = true
            pthread_detach(thread)
        }
    }

    /// Waits for the body to return; later calls return at once. Ask the body to stop first.
    public func join() {
        joined.withLock { joined in
            guard !joined else { return }
            joined = true
            pthread_join(thread, nil)
        }
    }
}
