import Credits
import Prometheus
import Synchronization

/// What the agent counts, read at one moment: the figures a scrape shows.
public struct MetricsSnapshot: Sendable, Equatable {
    public var framesReceived = 0
    public var framesMalformed = 0
    public var radioFramesDropped = 0
    public var radioCRCErrors = 0
    public var radioAnswering = false
    public var radioReinitialisations = 0
    public var forwarded: [String: Int] = [:]
    public var refused: [String: Int] = [:]
    public var dropped: [String: Int] = [:]
    public var outboxDepth = 0
    public var outboxOldestAgeSeconds: Double = 0
    public var brokerConnected = false
    public var brokerConnections = 0
    public var brokerChanges = 0
    public var messagesAcknowledged = 0
    public var downlinks: [String: Int] = [:]
    public var creditsCharged: Int64 = 0
    public var beaconsSent = 0
    public var witnessesReported = 0
    public var storeFailures = 0
    public var storeFailing = false
    public var channelPlansRefused = 0

    public init() {}
}

/// The agent's Prometheus metrics (swift-prometheus's registry and text format), named after
/// Prometheus's conventions: a `hotspotd_` prefix, `_total` for counters, seconds for time,
/// one metric per quantity with labels for its kinds. Every label value a metric can take is
/// there from the start, at 0, so that `rate()` and `increase()` see the first event.
/// Counters follow the agent's own running totals: each scrape adds what they grew by.
public final class HotspotMetrics: Sendable {
    /// Reasons and statuses known in advance.
    public static let refusalReasons = ["bad_mic", "old_fcnt", "no_credit"]
    public static let dropReasons = [
        "crc_error", "undecodable", "downlink", "unpaired", "unsupported", "filtered_dev_addr", "filtered_join_eui",
        "duplicate",
    ]
    public static let forwardedKinds = ["charged", "unpaired", "join"]
    public static let downlinkStatuses = [
        "OK", "TOO_LATE", "TOO_EARLY", "COLLISION_PACKET", "COLLISION_BEACON", "TX_FREQ", "TX_POWER", "GPS_UNLOCKED",
        "QUEUE_FULL", "INTERNAL_ERROR", "DUTY_CYCLE_OVERFLOW", "IGNORED",
    ]

    private let registry: PrometheusCollectorRegistry
    /// Counters by name and label value.
    private let counters: [String: Counter]
    private let gauges: [String: Gauge]
    /// The total each counter was last brought to; one update at a time, so that two scrapes
    /// at once never add a growth twice.
    private let totals = Mutex([String: Int64]())

    public init(version: String, region: String, board: String, gatewayID: String, startedAt: Double) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        var counters: [String: Counter] = [:]
        var gauges: [String: Gauge] = [:]
        func counter(_ name: String, _ help: String, label: String? = nil, values: [String] = []) {
            if let label {
                for value in values {
                    counters["\(name)|\(value)"] = registry.makeCounter(
                        name: name, labels: [(label, value)], help: help)
                }
            } else {
                counters[name] = registry.makeCounter(name: name, help: help)
            }
        }
        func gauge(_ name: String, _ help: String) {
            gauges[name] = registry.makeGauge(name: name, help: help)
        }
        registry.makeGauge(
            name: "hotspotd_info",
            labels: [("version", version), ("region", region), ("board", board), ("gateway_id", gatewayID)],
            help: "The agent's version, region, board and gateway ID; always 1."
        ).set(to: 1)
        registry.makeGauge(name: "hotspotd_start_time_seconds", help: "When the agent started, in Unix seconds.")
            .set(to: startedAt)
        counter("hotspotd_frames_received_total", "Frames taken from the radio or the packet forwarders.")
        counter("hotspotd_frames_malformed_total", "Datagrams and rxpk from packet forwarders that could not be read.")
        counter("hotspotd_radio_frames_dropped_total", "Frames the radio received that the agent had no room for.")
        counter("hotspotd_radio_crc_errors_total", "Frames the radio received with a bad CRC.")
        counter("hotspotd_radio_reinitialisations_total", "Times the radio stopped answering and was set up again.")
        counter(
            "hotspotd_uplinks_forwarded_total", "Uplinks put into the outbox for the broker.", label: "kind",
            values: Self.forwardedKinds)
        counter(
            "hotspotd_uplinks_refused_total", "Uplinks of paired sensors refused, by reason.", label: "reason",
            values: Self.refusalReasons)
        counter(
            "hotspotd_frames_dropped_total", "Frames neither forwarded nor refused, by reason.", label: "reason",
            values: Self.dropReasons)
        counter("hotspotd_broker_connections_total", "Connections made to a broker (the first one included).")
        counter("hotspotd_broker_changes_total", "Moves from one broker of mqtt.servers to another.")
        counter("hotspotd_mqtt_messages_acknowledged_total", "Outbox messages the broker acknowledged.")
        counter(
            "hotspotd_downlinks_total", "Downlink items by their tx_ack status.", label: "status",
            values: Self.downlinkStatuses)
        counter("hotspotd_credits_charged_total", "Data credits charged to sensor owners.")
        counter("hotspotd_beacons_sent_total", "Proof-of-coverage beacons sent.")
        counter("hotspotd_witnesses_total", "Beacons of other hotspots witnessed and reported.")
        counter("hotspotd_store_failures_total", "Frames and messages the store could not take.")
        counter("hotspotd_channel_plans_refused_total", "Channel plans from the network server refused.")
        counter(
            "hotspotd_metrics_requests_refused_total", "Requests to the metrics port refused (bad, slow, elsewhere).")
        gauge("hotspotd_outbox_messages", "Messages waiting in the outbox.")
        gauge("hotspotd_outbox_oldest_message_age_seconds", "Age of the oldest message waiting in the outbox.")
        gauge("hotspotd_broker_connected", "1 while connected to a broker.")
        gauge("hotspotd_radio_answering", "1 while the radio answers its health checks.")
        gauge("hotspotd_store_failing", "1 while the store refuses writes.")
        self.counters = counters
        self.gauges = gauges
    }

    /// Brings every metric to `snapshot`.
    public func update(_ snapshot: MetricsSnapshot) {
        totals.withLock { totals in
            func count(_ name: String, _ total: Int64) {
                guard let counter = counters[name] else { return }
                let previous = totals[name] ?? 0
                totals[name] = total
                // A total never goes down; if one did (a counter reset), what follows still adds.
                if total > previous { counter.increment(by: total - previous) }
            }
            func count(_ name: String, by values: [String: Int], known: [String]) {
                for value in Set(known).union(values.keys) where counters["\(name)|\(value)"] != nil {
                    count("\(name)|\(value)", Int64(values[value] ?? 0))
                }
            }
            count("hotspotd_frames_received_total", Int64(snapshot.framesReceived))
            count("hotspotd_frames_malformed_total", Int64(snapshot.framesMalformed))
            count("hotspotd_radio_frames_dropped_total", Int64(snapshot.radioFramesDropped))
            count("hotspotd_radio_crc_errors_total", Int64(snapshot.radioCRCErrors))
            count("hotspotd_radio_reinitialisations_total", Int64(snapshot.radioReinitialisations))
            count("hotspotd_uplinks_forwarded_total", by: snapshot.forwarded, known: Self.forwardedKinds)
            count("hotspotd_uplinks_refused_total", by: snapshot.refused, known: Self.refusalReasons)
            count("hotspotd_frames_dropped_total", by: snapshot.dropped, known: Self.dropReasons)
            count("hotspotd_broker_connections_total", Int64(snapshot.brokerConnections))
            count("hotspotd_broker_changes_total", Int64(snapshot.brokerChanges))
            count("hotspotd_mqtt_messages_acknowledged_total", Int64(snapshot.messagesAcknowledged))
            count("hotspotd_downlinks_total", by: snapshot.downlinks, known: Self.downlinkStatuses)
            count("hotspotd_credits_charged_total", snapshot.creditsCharged)
            count("hotspotd_beacons_sent_total", Int64(snapshot.beaconsSent))
            count("hotspotd_witnesses_total", Int64(snapshot.witnessesReported))
            count("hotspotd_store_failures_total", Int64(snapshot.storeFailures))
            count("hotspotd_channel_plans_refused_total", Int64(snapshot.channelPlansRefused))
            gauges["hotspotd_outbox_messages"]?.set(to: Double(snapshot.outboxDepth))
            gauges["hotspotd_outbox_oldest_message_age_seconds"]?.set(to: snapshot.outboxOldestAgeSeconds)
            gauges["hotspotd_broker_connected"]?.set(to: snapshot.brokerConnected ? 1 : 0)
            gauges["hotspotd_radio_answering"]?.set(to: snapshot.radioAnswering ? 1 : 0)
            gauges["hotspotd_store_failing"]?.set(to: snapshot.storeFailing ? 1 : 0)
        }
    }

    /// A request to the metrics port refused.
    public func countRefusedRequest() {
        counters["hotspotd_metrics_requests_refused_total"]?.increment()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    public func render() -> String {
        registry.emitToString()
    }
}

extension MetricsSnapshot {
    /// The meter's counts by the label values the metrics use.
    mutating func add(_ counts: MeterCounts) {
        forwarded = ["charged": counts.forwarded, "unpaired": counts.forwardedUnpaired, "join": counts.forwardedJoins]
        refused = Dictionary(uniqueKeysWithValues: counts.refused.map { ($0.key.rawValue, $0.value) })
        dropped = Dictionary(uniqueKeysWithValues: counts.dropped.map { ($0.key.rawValue, $0.value) })
        dropped["duplicate"] = counts.duplicates
        creditsCharged = counts.creditsCharged
    }
}
