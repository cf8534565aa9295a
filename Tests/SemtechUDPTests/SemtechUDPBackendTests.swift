import Clocks
import Foundation
import LoRaPHY
import Logging
import Radio
import Synchronization
import TestSupport
import Testing
import Wire

@testable import SemtechUDP

let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

/// A packet forwarder on loopback, speaking GWMP to the backend under test.
final class FakeForwarder: Sendable {
    let socket: UDPSocket
    let server: SocketAddress
    let gateway: EUI64
    let version: UInt8

    init(server: SocketAddress, gateway: EUI64, version: UInt8 = 2) throws {
        socket = try UDPSocket(binding: SocketAddress("127.0.0.1:0")!)
        self.server = server
        self.gateway = gateway
        self.version = version
    }

    func send(_ bytes: [UInt8]) {
        socket.send(bytes, to: server)
    }

    func header(_ identifier: UInt8, token: (UInt8, UInt8)) -> [UInt8] {
        [version, token.0, token.1, identifier] + gateway.bytes
    }

    func pushData(_ json: String, token: (UInt8, UInt8) = (0x12, 0x34)) {
        send(header(0, token: token) + Array(json.utf8))
    }

    func pullData(token: (UInt8, UInt8) = (0x56, 0x78)) {
        send(header(2, token: token))
    }

    /// The next datagram from the server, polled without blocking a thread of the test pool.
    /// The wait ends when the datagram comes; the bound only ends a test that fails, and is
    /// long enough for a machine loaded by a build beside the tests.
    func receive(timeoutMilliseconds: Int = 30_000) async -> [UInt8]? {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        repeat {
            if let datagram = socket.receive(timeoutMilliseconds: 0) { return datagram.bytes }
            try? await Task.sleep(for: .milliseconds(2))
        } while ContinuousClock.now < deadline
        return nil
    }
}

func rxpk(
    _ payload: [UInt8], tmst: UInt32 = 1_000_000, freq: String = "868.1", datr: String = "SF7BW125", rssi: Int = -60
) -> String {
    #"""
    {"rxpk":[{"tmst":\#(tmst),"chan":0,"rfch":0,"freq":\#(freq),"stat":1,"modu":"LORA","datr":"\#(datr)","codr":\#
    "4/5","rssi":\#(rssi),"lsnr":9.5,"size":\#(payload.count),"data":"\#(Base64.encode(payload))"}]}
    """#
}

func makeBackend(region: Region = .eu868, logger: Logger = quiet) async throws -> (SemtechUDPBackend, SocketAddress) {
    let backend = SemtechUDPBackend(
        bind: "127.0.0.1:0", region: region, logger: logger, acknowledgementTimeout: .milliseconds(500))
    try await backend.start()
    return (backend, try #require(backend.localAddress))
}

func nextFrame(_ backend: SemtechUDPBackend) async throws -> RadioFrame? {
    try await withTimeout(seconds: 5) { await backend.frames.first { _ in true } }
}

@Suite(.capturingLogs, .serialized) struct SemtechUDPBackendTests {
    @Test func pushDataIsAcknowledgedWithItsTokenAndDelivered() async throws {
        let (backend, server) = try await makeBackend()
        let forwarder = try FakeForwarder(server: server, gateway: EUI64(0xAA55_0000_0000_0001))
        forwarder.pushData(rxpk([0x40, 1, 2, 3], tmst: 123_456), token: (0xBE, 0xEF))
        #expect(await forwarder.receive() == [2, 0xBE, 0xEF, 1], "PUSH_ACK echoes the token")
        let frame = try #require(try await nextFrame(backend))
        #expect(frame.payload == [0x40, 1, 2, 3])
        #expect(frame.gatewayEUI == EUI64(0xAA55_0000_0000_0001))
        #expect(frame.timestamp == 123_456)
        #expect(frame.frequencyHz == 868_100_000)
        #expect(frame.snrDB == 9.5)
        await backend.stop()
    }

    /// Some forwarders (lora-mote-emulator among them) write the Base64 text's length as
    /// `size`: the frame is what `data` holds, and the disagreement is counted and said once.
    @Test func anRxpkWhoseSizeDisagreesWithItsDataIsTakenByItsData() async throws {
        let log = CapturedLog()
        let (backend, server) = try await makeBackend(logger: log.logger)
        let forwarder = try FakeForwarder(server: server, gateway: EUI64(0xAA55_0000_0000_0003))
        let payload: [UInt8] = [0x40, 4, 3, 2, 1, 0, 9, 8]
        for (index, token) in [(0x01, 0x01), (0x01, 0x02)].enumerated() {
            let text = rxpk(payload, tmst: UInt32(1_000 + index)).replacingOccurrences(
                of: #""size":\#(payload.count)"#, with: #""size":\#(Base64.encode(payload).utf8.count)"#)
            forwarder.pushData(text, token: (UInt8(token.0), UInt8(token.1)))
            #expect(await forwarder.receive() == [2, UInt8(token.0), UInt8(token.1), 1])
            let frame = try #require(try await nextFrame(backend))
            #expect(frame.payload == payload)
        }
        #expect(backend.counters.sizeDisagreements == 2)
        #expect(backend.forwarders.first?.sizeDisagreements == 2)
        let notices = log.entries(atLeast: .notice).filter { $0.message.contains("size") }
        #expect(notices.count == 1, "said once per forwarder")
        #expect(notices.first?.message.contains("size 12, data 8 bytes") == true)
        #expect(notices.first?.metadata["forwarder_eui"] == "aa55000000000003")
        await backend.stop()
    }

    /// A misconfigured forwarder must not lose every frame silently: each refused `rxpk` is
    /// said at notice level with its reason, within a budget, and counted.
    @Test func refusedRxpksAreSaidWithTheirReasonWithinABudget() async throws {
        let log = CapturedLog()
        let (backend, server) = try await makeBackend(logger: log.logger)
        let forwarder = try FakeForwarder(server: server, gateway: EUI64(0xAA55_0000_0000_0004))
        for index in 0..<50 {
            let token = (UInt8(index >> 8), UInt8(index & 0xFF))
            forwarder.pushData(
                #"""
                {"rxpk":[{"tmst":1,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","codr":"4/5","lsnr":9.5,\#
                "data":"QAECAw=="}]}
                """#,
                token: token)
            #expect(await forwarder.receive() == [2, token.0, token.1, 1])
        }
        #expect(backend.counters.malformedPackets == 50)
        #expect(await backend.statistics().malformed == 50)
        let refusals = log.entries(atLeast: .notice).filter { $0.message.hasPrefix("rxpk refused") }
        #expect(refusals.count == 20, "a burst of 20, then one a minute")
        #expect(refusals.first?.message == "rxpk refused: rxpk has no rssi")
        #expect(refusals.first?.metadata["forwarder_eui"] == "aa55000000000004")
        await backend.stop()
    }

    @Test func framesGoToASinkWhenOneIsNamed() async throws {
        final class Sink: FrameSink, @unchecked Sendable {
            let frames = Mutex<[RadioFrame]>([])
            let finished = Mutex(false)
            func put(_ frame: RadioFrame) -> Bool {
                frames.withLock { $0.append(frame) }
                return true
            }
            func finish() { finished.withLock { $0 = true } }
        }
        let (backend, server) = try await makeBackend()
        let sink = Sink()
        await backend.deliver(to: sink)
        let forwarder = try FakeForwarder(server: server, gateway: EUI64(0xAA55_0000_0000_0002))
        forwarder.pushData(rxpk([0x40, 9, 8, 7]), token: (0x01, 0x02))
        #expect(await forwarder.receive() == [2, 0x01, 0x02, 1])
        #expect(await eventually { sink.frames.withLock { $0.map(\.payload) } == [[0x40, 9, 8, 7]] })
        await backend.stop()
        #expect(sink.finished.withLock { $0 }, "stopping finishes the sink")
    }

    @Test func aSilentForwarderIsNotADeadBackend() async throws {
        // The daemon's watchdog reads lastProgressNanoseconds: without any datagram it must keep
        // moving while the receive thread runs, and stop moving once the backend stops.
        let (backend, _) = try await makeBackend()
        let started = await backend.statistics().lastProgressNanoseconds
        #expect(await eventually(within: 10) { await backend.statistics().lastProgressNanoseconds > started })
        await backend.stop()
        let stopped = await backend.statistics().lastProgressNanoseconds
        try await Task.sleep(for: .milliseconds(300))
        #expect(await backend.statistics().lastProgressNanoseconds == stopped)
    }

    @Test func pullDataIsAcknowledgedAndADownlinkGoesBackWithATxAck() async throws {
        let (backend, server) = try await makeBackend()
        let forwarder = try FakeForwarder(server: server, gateway: EUI64(0xAA55_0000_0000_0002))
        forwarder.pullData(token: (0x01, 0x02))
        #expect(await forwarder.receive() == [2, 0x01, 0x02, 4])
        forwarder.pushData(rxpk([0x40], tmst: 5_000_000))
        _ = await forwarder.receive()
        let uplink = try #require(try await nextFrame(backend))

        let request = TransmitRequest(
            payload: [0x60, 0x01, 0x02], frequencyHz: 868_100_000, dataRate: sf7, powerDBm: 14, invertedIQ: true,
            timing: .atTimestamp(uplink.timestamp &+ 1_000_000), gatewayEUI: uplink.gatewayEUI)
        async let outcome = backend.transmit(request)
        let pullResp = try #require(await forwarder.receive())
        #expect(pullResp.count > 4 && pullResp[0] == 2 && pullResp[3] == 3)
        let txpk = try #require(try JSON.parse(pullResp[4...])["txpk"])
        #expect(txpk["tmst"] == .number(6_000_000))
        #expect(txpk["freq"] == .number(868.1))
        #expect(txpk["datr"] == .string("SF7BW125"))
        #expect(txpk["ipol"] == .bool(true))
        #expect(txpk["ncrc"] == .bool(true))
        #expect(txpk["data"]?.string.flatMap(Base64.decode) == [0x60, 0x01, 0x02])
        forwarder.send(forwarder.header(5, token: (pullResp[1], pullResp[2])))
        #expect(await outcome == .sent(powerDBm: 14))
        await backend.stop()
    }

    @Test func txAckErrorsBecomeOutcomes() async throws {
        let (backend, server) = try await makeBackend()
        let forwarder = try FakeForwarder(server: server, gateway: EUI64(3))
        forwarder.pullData()
        _ = await forwarder.receive()
        let request = TransmitRequest(
            payload: [1], frequencyHz: 868_100_000, dataRate: sf7, powerDBm: 14, invertedIQ: true)
        async let outcome = backend.transmit(request)
        let pullResp = try #require(await forwarder.receive())
        forwarder.send(
            forwarder.header(5, token: (pullResp[1], pullResp[2])) + Array(#"{"txpk_ack":{"error":"TOO_LATE"}}"#.utf8))
        #expect(await outcome == .tooLate)
        await backend.stop()
    }

    @Test func aMissingTxAckIsAFailure() async throws {
        let (backend, server) = try await makeBackend()
        let forwarder = try FakeForwarder(server: server, gateway: EUI64(4))
        forwarder.pullData()
        _ = await forwarder.receive()
        let outcome = await backend.transmit(
            TransmitRequest(payload: [1], frequencyHz: 868_100_000, dataRate: sf7, powerDBm: 14, invertedIQ: true))
        guard case .failed(let reason) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        #expect(reason.contains("no TX_ACK"))
        await backend.stop()
    }

    @Test func versionOneForwardersWork() async throws {
        let (backend, server) = try await makeBackend()
        let forwarder = try FakeForwarder(server: server, gateway: EUI64(0xB827_EBFF_FE00_0001), version: 1)
        forwarder.pushData(rxpk([7, 7]), token: (9, 8))
        #expect(await forwarder.receive() == [1, 9, 8, 1])
        #expect(try await nextFrame(backend)?.payload == [7, 7])
        forwarder.pullData(token: (3, 4))
        #expect(await forwarder.receive() == [1, 3, 4, 4])
        let outcome = await backend.transmit(
            TransmitRequest(payload: [1], frequencyHz: 868_100_000, dataRate: sf7, powerDBm: 14, invertedIQ: true))
        #expect(outcome == .sent(powerDBm: nil), "version 1 sends no TX_ACK")
        let pullResp = try #require(await forwarder.receive())
        #expect(Array(pullResp.prefix(4)) == [1, 0, 0, 3], "version 1 PULL_RESP has no token")
        await backend.stop()
    }

    @Test func eachDownlinkGoesToTheForwarderThatHeardTheUplink() async throws {
        let (backend, server) = try await makeBackend()
        let first = try FakeForwarder(server: server, gateway: EUI64(0x11))
        let second = try FakeForwarder(server: server, gateway: EUI64(0x22))
        first.pullData()
        second.pullData()
        _ = await first.receive()
        _ = await second.receive()
        var request = TransmitRequest(
            payload: [1], frequencyHz: 868_100_000, dataRate: sf7, powerDBm: 14, invertedIQ: true)
        request.gatewayEUI = EUI64(0x22)
        async let outcome = backend.transmit(request)
        let pullResp = try #require(await second.receive())
        second.send(second.header(5, token: (pullResp[1], pullResp[2])))
        #expect(await outcome == .sent(powerDBm: 14))
        #expect(await first.receive(timeoutMilliseconds: 100) == nil, "nothing went to the other forwarder")

        // A frame tied to no uplink (a beacon) goes through the forwarder registered first.
        request.gatewayEUI = nil
        async let beacon = backend.transmit(request)
        let beaconResp = try #require(await first.receive())
        first.send(first.header(5, token: (beaconResp[1], beaconResp[2])))
        #expect(await beacon == .sent(powerDBm: 14))
        #expect(await second.receive(timeoutMilliseconds: 100) == nil, "one forwarder sends the beacon")
        await backend.stop()
    }

    /// The duty-cycle budget is the radio's: a second gateway EUI (which anyone on the LAN can
    /// invent) does not bring a second budget with it.
    @Test func everyForwarderSharesOneTransmitPolicy() async throws {
        final class CountingPolicy: TransmitPolicy, @unchecked Sendable {
            let admitted = Mutex(0)
            func admit(_ request: TransmitRequest) -> Result<TransmitTicket, TransmitRefusal> {
                admitted.withLock { $0 += 1 }
                return .success(TransmitTicket(id: 1))
            }
            func cancel(_ ticket: TransmitTicket) {}
        }
        let made = Mutex<[CountingPolicy]>([])
        let backend = SemtechUDPBackend(
            bind: "127.0.0.1:0", region: .eu868,
            makePolicy: {
                let policy = CountingPolicy()
                made.withLock { $0.append(policy) }
                return policy
            }, logger: quiet, acknowledgementTimeout: .milliseconds(500))
        try await backend.start()
        let server = try #require(backend.localAddress)
        for eui: UInt64 in [0x31, 0x32, 0x33] {
            let forwarder = try FakeForwarder(server: server, gateway: EUI64(eui))
            forwarder.pullData()
            _ = await forwarder.receive()
            var request = TransmitRequest(
                payload: [1], frequencyHz: 868_100_000, dataRate: sf7, powerDBm: 14, invertedIQ: true)
            request.gatewayEUI = EUI64(eui)
            async let outcome = backend.transmit(request)
            let pullResp = try #require(await forwarder.receive())
            forwarder.send(forwarder.header(5, token: (pullResp[1], pullResp[2])))
            #expect(await outcome == .sent(powerDBm: 14))
        }
        #expect(made.withLock { $0.count } == 1, "one policy for the one transmitter")
        #expect(made.withLock { $0.first?.admitted.withLock { $0 } } == 3)
        await backend.stop()
    }

    @Test func regionRulesApplyBeforeTheForwarderIsAsked() async throws {
        let (backend, server) = try await makeBackend()
        let forwarder = try FakeForwarder(server: server, gateway: EUI64(5))
        forwarder.pullData()
        _ = await forwarder.receive()
        let outcome = await backend.transmit(
            TransmitRequest(payload: [1], frequencyHz: 915_000_000, dataRate: sf7, powerDBm: 14, invertedIQ: true))
        #expect(outcome == .frequencyNotAllowed)
        #expect(await forwarder.receive(timeoutMilliseconds: 100) == nil)
        await backend.stop()
    }

    /// KR920 requires listen-before-talk: a concentrator not configured as sensing the channel
    /// (`semtech_udp.listen_before_talk`) is never asked to transmit there.
    @Test func whereListenBeforeTalkIsRequiredOnlyAForwarderThatSensesTransmits() async throws {
        for senses in [false, true] {
            let backend = SemtechUDPBackend(
                bind: "127.0.0.1:0", region: .kr920, forwarderSensesChannel: senses, logger: quiet,
                acknowledgementTimeout: .milliseconds(500))
            try await backend.start()
            let forwarder = try FakeForwarder(server: try #require(backend.localAddress), gateway: EUI64(5))
            forwarder.pullData()
            _ = await forwarder.receive()
            async let outcome = backend.transmit(
                TransmitRequest(payload: [1], frequencyHz: 922_100_000, dataRate: sf7, powerDBm: 14, invertedIQ: true))
            let pullResponse = await forwarder.receive(timeoutMilliseconds: senses ? 30_000 : 300)
            if senses {
                let response = try #require(pullResponse)
                forwarder.send(forwarder.header(5, token: (response[1], response[2])))
                #expect(await outcome == .sent(powerDBm: 14))
            } else {
                #expect(pullResponse == nil)
                if case .failed(let reason) = await outcome {
                    #expect(reason.contains("listen-before-talk"))
                } else {
                    Issue.record("sent without listening")
                }
            }
            await backend.stop()
        }
    }

    /// A dual-stack socket sees an IPv4 forwarder as ::ffff:a.b.c.d; it is written, and
    /// matched against `semtech_udp.forwarders`, as the IPv4 address it is.
    @Test func anIPv4MappedSenderIsItsIPv4Address() throws {
        #expect(SocketAddress("[::ffff:192.0.2.7]:1700")?.host == "192.0.2.7")
        #expect(SocketAddress("[::1]:1700")?.host == "::1")
        #expect(SemtechUDPBackend.TrustedForwarder("AA555A0000000001@192.0.2.7")?.host == "192.0.2.7")
        #expect(SemtechUDPBackend.TrustedForwarder("AA555A0000000001@[::1]")?.host == "::1")
        #expect(SemtechUDPBackend.TrustedForwarder("AA555A00000000@192.0.2.7") == nil)
        #expect(SemtechUDPBackend.TrustedForwarder("AA555A0000000001@not-an-address") == nil)
    }

    @Test func statReportsAreKept() async throws {
        let (backend, server) = try await makeBackend()
        let forwarder = try FakeForwarder(server: server, gateway: EUI64(6))
        forwarder.pushData(protocolStat)
        _ = await forwarder.receive()
        #expect(backend.forwarders.first?.status?.temperature == 23.2)
        await backend.stop()
    }

    @Test func aBusyPortIsANamedError() async throws {
        let (backend, server) = try await makeBackend()
        let second = SemtechUDPBackend(bind: "\(server)", region: .eu868, logger: quiet)
        await #expect(throws: RadioError.self) { try await second.start() }
        let bad = SemtechUDPBackend(bind: "nowhere", region: .eu868, logger: quiet)
        await #expect(throws: RadioError.self) { try await bad.start() }
        await backend.stop()
    }

    /// A second sender floods the port with malformed datagrams, ten between any two of a real
    /// forwarder's: every good frame arrives, in order, each good PUSH_DATA is acknowledged, and
    /// the counters say exactly what was refused.
    @Test func goodTrafficFlowsThroughAFloodOfMalformedDatagrams() async throws {
        final class Sink: FrameSink, @unchecked Sendable {
            let frames = Mutex<[RadioFrame]>([])
            func put(_ frame: RadioFrame) -> Bool {
                frames.withLock { $0.append(frame) }
                return true
            }
            func finish() {}
        }
        let (backend, server) = try await makeBackend()
        let sink = Sink()
        await backend.deliver(to: sink)
        let good = try FakeForwarder(server: server, gateway: EUI64(0xAA55_0000_0000_00AA))
        let hostile = try FakeForwarder(server: server, gateway: EUI64(0xBAD0_0000_0000_0BAD))
        var generator = SplitMix64(seed: 0xF100D)
        let rounds = 300
        for round in 0..<rounds {
            let noise = (0..<Int.random(in: 0...64, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            let malformed: [[UInt8]] = [
                [UInt8.random(in: 3...255, using: &generator)] + noise,  // an unknown protocol version
                Array(hostile.header(0, token: (1, 1)).prefix(Int.random(in: 0...11, using: &generator))),  // cut short
                hostile.header(0, token: (1, 2)) + Array("{\"rxpk\":[{".utf8) + noise,  // not JSON
                hostile.header(0, token: (1, 3)) + Array("[1,2,3]".utf8),  // not an object
                hostile.header(0, token: (1, 4)) + Array("\"rxpk\"".utf8),
                hostile.header(3, token: (1, 5)) + noise,  // PULL_RESP goes the other way
                hostile.header(4, token: (1, 6)),  // so does PULL_ACK
                hostile.header(0x07, token: (1, 7)) + noise,  // no such identifier
                hostile.header(0, token: (1, 8)) + [0xFF, 0xFE] + noise,  // not UTF-8
                // Nested too deep.
                hostile.header(0, token: (1, 9)) + Array(String(repeating: "[", count: 10_000).utf8),
            ]
            for datagram in malformed { hostile.send(datagram) }
            // A well-formed PUSH_DATA whose one packet is malformed: acknowledged, packet refused.
            hostile.pushData(
                #"{"rxpk":[{"tmst":1,"freq":868.1,"modu":"LORA","datr":"SF7BW125","size":3}]}"#, token: (2, 0))
            good.pushData(rxpk([0x40] + Array("good \(round)".utf8)), token: (UInt8(round >> 8), UInt8(round & 0xFF)))
            #expect(await good.receive() == [2, UInt8(round >> 8), UInt8(round & 0xFF), 1], "round \(round)")
        }
        let expected = (0..<rounds).map { [0x40] + Array("good \($0)".utf8) }
        #expect(await eventually { sink.frames.withLock { $0.count } >= rounds })
        #expect(sink.frames.withLock { $0.map(\.payload) } == expected)
        let counters = backend.counters
        #expect(counters.datagrams == rounds * 12)
        #expect(counters.malformedDatagrams == rounds * 10)
        #expect(counters.malformedPackets == rounds)
        #expect(counters.pushData == rounds * 2)
        await backend.stop()
    }

    /// 10,000 random and mutated datagrams, then a good one, which must still be delivered.
    @Test func survivesTenThousandHostileDatagrams() async throws {
        let (backend, server) = try await makeBackend()
        let forwarder = try FakeForwarder(server: server, gateway: EUI64(7))
        var generator = SplitMix64(seed: 0xF0F0_2026)
        let valid: [[UInt8]] = [
            forwarder.header(0, token: (1, 2)) + Array(rxpk([0x40, 1, 2, 3, 4]).utf8),
            forwarder.header(0, token: (1, 2)) + Array(protocolRxpk.utf8),
            forwarder.header(0, token: (1, 2)) + Array(protocolStat.utf8),
            forwarder.header(2, token: (1, 2)),
            forwarder.header(5, token: (1, 2)) + Array(#"{"txpk_ack":{"error":"NONE"}}"#.utf8),
        ]
        var sent = 0
        for batch in 0..<100 {
            for _ in 0..<100 {
                forwarder.send(mutate(valid.randomElement(using: &generator)!, using: &generator))
                sent += 1
            }
            // Let the server drain each batch, so the kernel's buffer never overflows.
            let expected = sent
            _ = await eventually(within: 10) { backend.counters.datagrams >= expected }
            #expect(backend.counters.datagrams == sent, "batch \(batch)")
        }
        while await forwarder.receive(timeoutMilliseconds: 20) != nil {}  // the acknowledgements
        let counters = backend.counters
        #expect(counters.malformedDatagrams + counters.malformedPackets > 1_000)

        // Whatever frames the mutations let through are consumed; then the good one arrives.
        let drained = Task { () -> Bool in
            for await frame in backend.frames where frame.payload == Array("the good one".utf8) {
                return true
            }
            return false
        }
        forwarder.pushData(rxpk(Array("the good one".utf8)))
        #expect(await forwarder.receive() == [2, 0x12, 0x34, 1])
        #expect(try await withTimeout(seconds: 5) { await drained.value })
        await backend.stop()
    }
}

/// A datagram with random damage: bytes flipped, cut short, garbage inserted or appended, or
/// replaced by noise altogether.
func mutate(_ datagram: [UInt8], using generator: inout SplitMix64) -> [UInt8] {
    var bytes = datagram
    switch Int.random(in: 0..<6, using: &generator) {
    case 0:
        for _ in 0..<Int.random(in: 1...8, using: &generator) where !bytes.isEmpty {
            bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
        }
    case 1:
        bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator)))
    case 2:
        let at = Int.random(in: 0...bytes.count, using: &generator)
        bytes.insert(
            contentsOf: (0..<Int.random(in: 1...16, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }, at: at)
    case 3:
        bytes = (0..<Int.random(in: 0...300, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator)
        }
    case 4:
        // Structural damage to the JSON: a bracket, quote or colon dropped.
        if let index = bytes.indices.filter({ $0 >= 12 && [0x7B, 0x7D, 0x22, 0x3A, 0x5B, 0x5D].contains(bytes[$0]) })
            .randomElement(using: &generator)
        {
            bytes.remove(at: index)
        }
    default:
        if !bytes.isEmpty { bytes[0] = UInt8.random(in: 0...4, using: &generator) }
    }
    return bytes
}

let sf7 = LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125)
