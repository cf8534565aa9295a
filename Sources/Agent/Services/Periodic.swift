import ServiceLifecycle

/// A service that does one thing every `interval` until the group shuts down: receipts,
/// nonce pruning, the sweep of refusal counts, stats. The first run comes after one interval,
/// or at once when `immediately`. A graceful shutdown ends the wait, never an action under way.
public struct Periodic: Service {
    public let name: String
    public let interval: Duration
    public let immediately: Bool
    private let action: @Sendable () async -> Void

    public init(
        _ name: String, every interval: Duration, immediately: Bool = false,
        action: @escaping @Sendable () async -> Void
    ) {
        self.name = name
        self.interval = interval
        self.immediately = immediately
        self.action = action
    }

    public func run() async {
        if immediately { await action() }
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            guard !Task.isCancelled, !Task.isShuttingDownGracefully else { return }
            await action()
        }
    }
}

/// A long-running task as a service: it is cancelled when the group shuts down (the coverage
/// schedule, whose beacons have nothing to drain).
public struct CancelledAtShutdown: Service {
    private let body: @Sendable () async -> Void

    public init(_ body: @escaping @Sendable () async -> Void) {
        self.body = body
    }

    public func run() async {
        _ = try? await cancelWhenGracefulShutdown { await body() }
    }
}
