import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// What the running agent last said about itself, in `status.json` beside the store: written
/// at every watchdog period and once more on a clean stop, read by `hotspotd status`.
/// Why `status.json` could not be written: the path and the system's reason.
public struct StatusFileError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    init(message: String) {
        self.message = message
    }
}

public struct AgentStatus: Codable, Sendable, Equatable {
    public static let fileName = "status.json"

    public var pid: Int32
    public var version: String
    public var gatewayID: String
    public var board: String
    public var region: String
    public var broker: String
    /// Unix seconds.
    public var startedAt: Int64
    public var updatedAt: Int64
    /// How long until the next update at the latest; older than twice this, the agent is stuck.
    public var updateIntervalSeconds: Double
    /// False once the agent stopped cleanly.
    public var running: Bool
    public var radioAnswering: Bool
    public var brokerConnected: Bool
    public var framesReceived: Int
    public var uplinksForwarded: Int
    public var uplinksRefused: Int
    public var outboxDepth: Int
    /// Why the store refuses writes, while it does; and how many frames it could not take.
    public var storeError: String? = nil
    public var framesNotStored: Int? = nil
    /// Datagrams and packets from a packet forwarder refused as malformed since the start.
    public var framesMalformed: Int? = nil
    /// Packet forwarders' datagrams refused since the start, by reason (`not_listed`,
    /// `too_many_forwarders`, `tx_ack_unmatched`); only the reasons that happened.
    public var forwarderRefusals: [String: Int]? = nil
    /// Uplinks `[filters]` left out since the start, by reason; only the reasons that happened.
    public var uplinksFiltered: [String: Int]? = nil
    public var lastUplinkAt: Int64?
    public var lastBeaconAt: Int64?
    public var lastWitnessAt: Int64?

    enum CodingKeys: String, CodingKey {
        case pid, version, board, region, broker, running
        case gatewayID = "gateway_id"
        case startedAt = "started_at"
        case updatedAt = "updated_at"
        case updateIntervalSeconds = "update_interval_seconds"
        case radioAnswering = "radio_answering"
        case brokerConnected = "broker_connected"
        case framesReceived = "frames_received"
        case uplinksForwarded = "uplinks_forwarded"
        case uplinksRefused = "uplinks_refused"
        case outboxDepth = "outbox_depth"
        case storeError = "store_error"
        case framesNotStored = "frames_not_stored"
        case framesMalformed = "frames_malformed"
        case forwarderRefusals = "forwarder_refusals"
        case uplinksFiltered = "uplinks_filtered"
        case lastUplinkAt = "last_uplink_at"
        case lastBeaconAt = "last_beacon_at"
        case lastWitnessAt = "last_witness_at"
    }

    public static func path(dataDirectory: String) -> String {
        dataDirectory + "/" + fileName
    }

    /// Replaces the file at once (write and rename), so a reader never sees half of it.
    public func write(dataDirectory: String) throws(StatusFileError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let bytes = try? encoder.encode(self) else { throw StatusFileError(message: "cannot encode the status") }
        let path = Self.path(dataDirectory: dataDirectory)
        if let problem = replaceFile(path, with: Array(bytes), durable: false) {
            throw StatusFileError(message: "\(path): \(problem)")
        }
    }

    public static func read(dataDirectory: String) throws -> AgentStatus {
        let data = try Data(contentsOf: URL(fileURLWithPath: path(dataDirectory: dataDirectory)))
        return try JSONDecoder().decode(AgentStatus.self, from: data)
    }

    public enum Liveness: String, Sendable {
        case running
        /// The process is there but has not written for two periods: wedged.
        case notResponding = "not responding"
        case stopped
        /// The file says running, the process is gone: killed or crashed.
        case died
    }

    /// `processExists` answers whether a pid is alive (kill(pid, 0)).
    public func liveness(nowUnixSeconds: Int64, processExists: (Int32) -> Bool) -> Liveness {
        guard running else { return .stopped }
        guard processExists(pid) else { return .died }
        return Double(nowUnixSeconds - updatedAt) > max(2 * updateIntervalSeconds, 5) ? .notResponding : .running
    }
}
