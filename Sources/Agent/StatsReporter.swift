import ChirpStack
import Messages
import Store

/// Puts a `gw.GatewayStats` into the outbox every interval, with metadata the agent provides
/// (version, board, region, outbox depth, uplinks refused for credit …).
public struct StatsReporter: Sendable {
    public let statistics: TrafficStatistics
    public let store: Store
    public let topics: Topics
    public let encoding: MessageEncoding
    private let metadata: @Sendable () async -> [String: String]

    public init(
        statistics: TrafficStatistics, store: Store, topics: Topics, encoding: MessageEncoding = .protobuf,
        metadata: @escaping @Sendable () async -> [String: String]
    ) {
        self.statistics = statistics
        self.store = store
        self.topics = topics
        self.encoding = encoding
        self.metadata = metadata
    }

    /// One report now. `time` in nanoseconds since the Unix epoch.
    @discardableResult
    public func report(at time: Int64) async throws(StoreError) -> Gw_GatewayStats {
        var fields = await metadata()
        fields["outbox_depth"] = String(await store.outboxDepth())
        var stats = statistics.report(gatewayID: topics.gatewayID, time: time, metadata: fields)
        // The channel plan in force, where ChirpStack looks for it to tell whether to send one.
        if let version = fields["config_version"] { stats.configVersion = version }
        if let payload = try? encoding.encode(stats) {
            try await store.enqueue(
                [NewMessage(kind: .other, topic: topics.stats, messageID: "stats-\(time)", payload: payload)], at: time)
        }
        return stats
    }

    /// Reports every `interval` until cancelled.
    public func run(every interval: Duration, now: @Sendable () -> Int64) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            guard !Task.isCancelled else { return }
            _ = try? await report(at: now())
        }
    }
}
