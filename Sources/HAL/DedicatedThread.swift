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
    // The pthread handle is written once in init and read once in join; both happen on the
    // owner's side, so no lock is needed.
    private var thread: pthread_t
    private var joined = false

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts `body` on a new thread; `name` appears in errors.
    public init(name: String, _ body: @escaping @Sendable () -> Void) throws(HardwareError) {
        let box = Unmanaged.passRetained(Body(body))
        #if canImport(Darwin)
        var handle: pthread_t? = nil
        #else
        var handle = pthread_t()
        #endif
        let result = pthread_create(&handle, nil, { raw in
            let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
            body.run()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw HardwareError(.io, "cannot start thread \(name): \(String(cString: strerror(result)))", errno: result)
        }
        #if canImport(Darwin)
        thread = handle!
        #else
        thread = handle
        #endif
    }

    /// Waits for the body to return. Call once, from the owner, after asking the body to stop.
    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }
}
