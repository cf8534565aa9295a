import Foundation
import Synchronization

/// Awaits `operation`, failing after `seconds` instead of hanging the test run. The operation is
/// not awaited past the deadline (it is cancelled and left behind), so even a stuck one cannot
/// hold the run.
public func withTimeout<T: Sendable>(seconds: Double = 5, _ operation: @escaping @Sendable () async -> T) async throws
    -> T
{
    let slot = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let finish = { @Sendable (result: Result<T, any Error>) -> Bool in
        guard
            let continuation = slot.withLock({ slot -> CheckedContinuation<T, any Error>? in
                defer { slot = nil }
                return slot
            })
        else { return false }
        continuation.resume(with: result)
        return true
    }
    return try await withCheckedThrowingContinuation { continuation in
        slot.withLock { $0 = continuation }
        let work = Task { _ = finish(.success(await operation())) }
        Task {
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            if finish(.failure(TimedOut(seconds: seconds))) { work.cancel() }
        }
    }
}

/// Polls `condition` until it holds, for up to `seconds`; a loaded machine gets time, a
/// condition that never holds still fails the test.
public func eventually(within seconds: Double = 5, _ condition: @Sendable () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return await condition()
}

public struct TimedOut: Error, CustomStringConvertible {
    public var seconds: Double
    public var description: String { "nothing arrived within \(seconds) s" }
}

/// Runs blocking work (a child process, a pipe read to the end) on a thread of its own, so
/// that it never holds one of the cooperative pool's few threads: with two cores there are
/// two, and tests that block both starve every other test's tasks of time.
public func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.start()
    }
}
