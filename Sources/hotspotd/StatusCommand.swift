import Agent
import ArgumentParser
import FoundationEssentials
import Store

#if canImport(Glibc)
    import Glibc
#endif

/// `hotspotd status`: what the running agent last reported, with the store's view of the
/// outbox and pairings.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the running agent's state: radio, broker, last uplink, outbox, coverage.",
        discussion:
            """
            Exits 0 while the agent runs, 3 when it is stopped, has died or does not respond, 1 when it never ran \
            here.
            """
    )

    @OptionGroup var location: StoreLocation

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let directory = try location.directory()
        let status: AgentStatus
        guard access(AgentStatus.path(dataDirectory: directory), F_OK) == 0 else {
            printError(
                """
                no status: hotspotd has not run with this data directory \
                (\(AgentStatus.path(dataDirectory: directory)))
                """
            )
            throw ExitCode(1)
        }
        do {
            status = try AgentStatus.read(dataDirectory: directory)
        } catch {
            printError("cannot read the status: \(error) (\(AgentStatus.path(dataDirectory: directory)))")
            throw ExitCode(1)
        }
        let now = Int64(Date().timeIntervalSince1970)
        let liveness = status.liveness(nowUnixSeconds: now) { pid in kill(pid, 0) == 0 || errno == EPERM }
        // The store is the truth for what waits to be sent; the file may be a period old.
        var outboxDepth = status.outboxDepth
        var pairings: Int?
        if access(directory + "/hotspotd.db", R_OK) == 0,
            let store = try? Store(readingFrom: directory + "/hotspotd.db")
        {
            outboxDepth = await store.outboxDepth()
            pairings = (try? await store.pairings())?.count
        }

        if json {
            let report = StatusReport(
                state: liveness.rawValue, pid: status.pid, version: status.version, gateway_id: status.gatewayID,
                board: status.board, region: status.region, broker: status.broker,
                broker_connected: status.brokerConnected, radio_answering: status.radioAnswering,
                started_at: status.startedAt, updated_at: status.updatedAt,
                frames_received: status.framesReceived, uplinks_forwarded: status.uplinksForwarded,
                uplinks_refused: status.uplinksRefused, outbox_depth: outboxDepth,
                store_error: status.storeError, frames_not_stored: status.framesNotStored ?? 0,
                frames_malformed: status.framesMalformed ?? 0,
                forwarder_refusals: status.forwarderRefusals,
                last_uplink_at: status.lastUplinkAt, last_beacon_at: status.lastBeaconAt,
                last_witness_at: status.lastWitnessAt,
                pairings: pairings
            )
            let encoder = JSONEncoder()
            // One line, as every other --json of hotspotd's.
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            let running = liveness == .running
            var rows: [(String, String)] = [
                (
                    "state",
                    liveness == .running
                        ? "running (pid \(status.pid), since \(Self.time(status.startedAt, now: now)))"
                        : "\(liveness.rawValue) (last report \(Self.time(status.updatedAt, now: now)))"
                ),
                ("gateway", "\(status.gatewayID), \(status.board), \(status.region), hotspotd \(status.version)"),
                // The agent reports every watchdog period (10 s without systemd): the counters
                // below are as of then; the outbox and pairings are read from the store now.
                ("reported", Self.time(status.updatedAt, now: now) + " (counters as of then; outbox and pairings now)"),
                ("radio", running ? (status.radioAnswering ? "answering" : "NOT ANSWERING") : "-"),
                (
                    "broker",
                    "\(status.broker), " + (running ? (status.brokerConnected ? "connected" : "DISCONNECTED") : "-")
                ),
                (
                    "frames received",
                    "\(status.framesReceived)"
                        + ((status.framesMalformed ?? 0) > 0
                            ? """
                             (and \(status.framesMalformed ?? 0) malformed, refused: journalctl -u hotspotd -p \
                            notice)
                            """
                            : "")
                ),
                ("uplinks forwarded", "\(status.uplinksForwarded)"),
                ("uplinks refused", "\(status.uplinksRefused)"),
                ("last uplink", status.lastUplinkAt.map { Self.time($0, now: now) } ?? "none"),
                ("outbox", "\(outboxDepth) waiting"),
                (
                    "store",
                    (status.storeError.map { "REFUSES WRITES: \($0)" } ?? "writable")
                        + ((status.framesNotStored ?? 0) > 0
                            ? " (\(status.framesNotStored ?? 0) frames could not be stored since the start)" : "")
                ),
                ("last beacon", status.lastBeaconAt.map { Self.time($0, now: now) } ?? "none"),
                ("last witness", status.lastWitnessAt.map { Self.time($0, now: now) } ?? "none"),
                ("pairings", pairings.map { "\($0)" } ?? "-"),
            ]
            // With [filters]: the uplinks they left out, by reason.
            if let filtered = status.uplinksFiltered {
                let counts = filtered.sorted { $0.key < $1.key }.map {
                    "\($0.value) \($0.key.replacing("filtered_", with: "by ").replacing("_", with: " "))"
                }
                rows.insert(("uplinks filtered", counts.joined(separator: ", ")), at: 6)
            }
            // Behind a packet forwarder: its datagrams refused, by reason.
            if let refusals = status.forwarderRefusals {
                let counts = refusals.sorted { $0.key < $1.key }.map {
                    "\($0.value) \($0.key.replacing("_", with: " "))"
                }
                rows.insert(("forwarders refused", counts.isEmpty ? "none" : counts.joined(separator: ", ")), at: 6)
            }
            let width = rows.map(\.0.count).max() ?? 0
            for (name, value) in rows {
                print(name + String(repeating: " ", count: width - name.count) + "  " + value)
            }
        }
        if liveness != .running { throw ExitCode(3) }
    }

    /// `status --json`: the status file's fields, the liveness, and the store's outbox and pairings.
    struct StatusReport: Encodable {
        var state: String
        var pid: Int32
        var version: String
        var gateway_id: String
        var board: String
        var region: String
        var broker: String
        var broker_connected: Bool
        var radio_answering: Bool
        var started_at: Int64
        var updated_at: Int64
        var frames_received: Int
        var uplinks_forwarded: Int
        var uplinks_refused: Int
        var outbox_depth: Int
        var store_error: String?
        var frames_not_stored: Int
        var frames_malformed: Int
        var forwarder_refusals: [String: Int]?
        var last_uplink_at: Int64?
        var last_beacon_at: Int64?
        var last_witness_at: Int64?
        var pairings: Int?
    }

    /// "2026-11-26 14:27:55 UTC (12 s ago)".
    static func time(_ unixSeconds: Int64, now: Int64) -> String {
        var seconds = time_t(unixSeconds)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let text =
            """
            \(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\
            \(two(parts.tm_min)):\(two(parts.tm_sec)) UTC
            """
        let ago = now - unixSeconds
        let relative =
            ago < 120
            ? "\(ago) s ago"
            : ago < 7200 ? "\(ago / 60) min ago" : ago < 172_800 ? "\(ago / 3600) h ago" : "\(ago / 86400) days ago"
        return "\(text) (\(relative))"
    }
}
