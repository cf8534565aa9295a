/// Awaits `operation`, failing after `seconds` instead of hanging the test run.
func withTimeout<T: Sendable>(seconds: Double = 5, _ operation: @escaping @Sendable () async -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { await operation() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw TimedOut(seconds: seconds)
        }
        return value
    }
}

struct TimedOut: Error, CustomStringConvertible {
    var seconds: Double
    var description: String { "nothing arrived within \(seconds) s" }
}
