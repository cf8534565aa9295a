import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension AgentProcessTests {
    /// `[metrics]` end to end: `hotspotd run` behind a forwarder with a real mosquitto, scraped over
    /// HTTP, the text read by PyPI's prometheus-client (the parser Prometheus's Python client
    /// ships); then the broker stopped, and what a hostile client sends to the port.
    @Suite(.capturingLogs, .serialized) struct MetricsTests {
        /// One scrape, parsed by prometheus_client: sample name and labels → value.
        func scrape(port: Int) throws -> [String: Double] {
            let script = """
                import sys, urllib.request
                from prometheus_client.parser import text_string_to_metric_families
                with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10) as response:
                    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4"), response.headers
                    text = response.read().decode()
                for family in text_string_to_metric_families(text):
                    for sample in family.samples:
                        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                        print(f"{family.type} {family.name} {sample.name}{{{labels}}} {sample.value}")
                """
            let result = try run(try chirpStackPython(), ["-c", script, "\(port)"])
            guard result.status == 0 else { throw BrokerError("scrape: \(result.error)") }
            var samples: [String: Double] = [:]
            for line in result.output.split(separator: "\n") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, let value = Double(parts[3]) else { continue }
                samples[String(parts[2])] = value
                // The family, as the parser names it (a counter's without `_total`): 1 for a counter.
                samples["type:" + parts[1]] = parts[0] == "counter" ? 1 : 0
            }
            return samples
        }

        /// Sends raw bytes to the metrics port and returns the status line of the answer, if any.
        func exchange(port: Int, _ bytes: [UInt8], pause: Duration = .zero) -> String? {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            guard connected else { return nil }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if pause > .zero { usleep(UInt32(pause.components.seconds * 1_000_000)) }
            var buffer = [UInt8](repeating: 0, count: 512)
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return nil }
            return String(decoding: buffer[0..<count], as: UTF8.self).split(separator: "\r\n").first.map(String.init)
        }

        @Test(.timeLimit(.minutes(3)))
        func aScrapeShowsTheAgentAndItsBrokerAndWithstandsBadRequests() async throws {
            let port = try Broker.freePort()
            let rig = try await FaultRig(metrics: "bind = \"127.0.0.1:\(port)\"")
            try await rig.startAgent()
            defer { rig.killAgent() }
            // Dave's owner has credit for 20 of his uplinks; he sends 24.
            for _ in 0..<12 { await rig.push(8) }
            #expect(await eventually(within: 20) { rig.published().count >= 70 })

            var samples = try scrape(port: port)
            #expect(samples["hotspotd_frames_received_total{}"] ?? 0 >= 90)
            #expect(samples["hotspotd_uplinks_forwarded_total{kind=charged}"] ?? 0 >= 70)
            #expect(samples["hotspotd_uplinks_refused_total{reason=no_credit}"] ?? 0 >= 1, "dave's owner ran out")
            #expect(
                samples["hotspotd_uplinks_refused_total{reason=bad_mic}"] == 0, "every reason is there from the start")
            #expect(samples["hotspotd_credits_charged_total{}"] ?? 0 >= 140)
            #expect(samples["hotspotd_broker_connected{}"] == 1)
            #expect(samples["hotspotd_broker_connections_total{}"] == 1)
            #expect(samples["hotspotd_radio_answering{}"] == 1)
            #expect(samples["hotspotd_downlinks_total{status=OK}"] == 0)
            #expect(samples["hotspotd_store_failing{}"] == 0)
            #expect(samples["type:hotspotd_frames_received"] == 1, "a counter, by the parser's reading")
            #expect(
                samples.keys.contains {
                    $0.hasPrefix("hotspotd_info{board=rak2287,gateway_id=0016c001ff10a235,region=EU868")
                })

            // The broker goes away: disconnected, and the outbox grows and ages.
            rig.broker.stop()
            for _ in 0..<3 { await rig.push(8) }
            #expect(
                await eventually(within: 20) {
                    let now = try? self.scrape(port: port)
                    return now?["hotspotd_broker_connected{}"] == 0 && (now?["hotspotd_outbox_messages{}"] ?? 0) >= 10
                })
            try await Task.sleep(for: .seconds(2))
            samples = try scrape(port: port)
            #expect(samples["hotspotd_outbox_oldest_message_age_seconds{}"] ?? 0 >= 1)

            // What a port scanner or a hostile client sends: each answered with its error, counted.
            #expect(
                exchange(port: port, Array("POST /metrics HTTP/1.1\r\n\r\n".utf8)) == "HTTP/1.1 405 Method Not Allowed")
            #expect(exchange(port: port, Array("GET /etc/passwd HTTP/1.1\r\n\r\n".utf8)) == "HTTP/1.1 404 Not Found")
            #expect(exchange(port: port, Array("\u{16}\u{03}\u{01}garbage\r\n\r\n".utf8)) == "HTTP/1.1 400 Bad Request")
            let huge = Array("GET /metrics HTTP/1.1\r\nX: ".utf8) + [UInt8](repeating: 0x41, count: 20_000)
            #expect(exchange(port: port, huge) == "HTTP/1.1 431 Request Header Fields Too Large")
            #expect(
                exchange(port: port, Array("GET /metrics HTTP/1.1\r\n".utf8), pause: .seconds(3))
                    == "HTTP/1.1 408 Request Timeout", "a request that never ends")
            #expect(exchange(port: port, Array("HEAD /metrics HTTP/1.1\r\n\r\n".utf8)) == "HTTP/1.1 200 OK")
            samples = try scrape(port: port)
            #expect(samples["hotspotd_metrics_requests_refused_total{}"] == 5)
            let log = tail(of: rig.logFile, lines: 400)
            #expect(log.contains("metrics: a request refused: 405 Method Not Allowed"))
            try rig.broker.start()
            #expect(await eventually(within: 30) { (try? self.scrape(port: port))?["hotspotd_outbox_messages{}"] == 0 })
            #expect(rig.stopAgent() == 0)
        }

        /// Off by default: the agent listens on no TCP port at all (its sockets, looked up in
        /// /proc/net/tcp and tcp6 by inode, none in the LISTEN state).
        @Test func offByDefault() async throws {
            let rig = try await FaultRig()
            try await rig.startAgent()
            defer { rig.killAgent() }
            let pid = try #require(rig.agent)
            let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            let sockets = Set(
                descriptors.compactMap {
                    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")
                }
                .filter { $0.hasPrefix("socket:[") }.map { String($0.dropFirst(8).dropLast()) })
            #expect(!sockets.isEmpty, "the agent's sockets are visible (UDP, MQTT)")
            var listening: [String] = []
            for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
                let lines = ((try? String(contentsOfFile: table, encoding: .utf8)) ?? "").split(separator: "\n")
                    .dropFirst()
                for line in lines {
                    let fields = line.split(separator: " ")
                    // local address, remote address, state (0A = LISTEN) …, inode is the tenth field.
                    if fields.count > 9, fields[3] == "0A", sockets.contains(String(fields[9])) {
                        listening.append(String(fields[1]))
                    }
                }
            }
            #expect(listening.isEmpty, "listening on \(listening)")
            #expect(!tail(of: rig.logFile, lines: 100).contains("metrics served"))
            #expect(rig.stopAgent() == 0)
        }
    }
}
