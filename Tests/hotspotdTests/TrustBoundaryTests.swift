import Agent
import ChirpStack
import Clocks
import Coverage
import Credits
import Cryptography
import Foundation
import LoRaWAN
import Messages
import SemtechUDP
import Store
import SwiftProtobuf
import TestSupport
import Testing
import Transport
import Wire

extension AgentProcessTests {
    /// Attacks on a running `hotspotd` through the broker and the air, each with the bound it now
    /// meets. The agent runs as a process, beside a real mosquitto, fed by this test as its packet
    /// forwarder (FaultRig).
    @Suite(.capturingLogs, .serialized) struct TrustBoundaryTests {
        /// A wrapper that runs the agent with its wall clock (CLOCK_REALTIME) `seconds` off, by a
        /// small preloaded library built here (libfaketime hides the arguments from the Swift
        /// runtime): a spoofed NTP server, or a Pi without a real-time clock.
        func shiftedClock(by seconds: Int, in directory: String) throws -> [String] {
            let source = directory + "/clock-shift.c"
            let library = directory + "/clock-shift.so"
            try """
            #define _GNU_SOURCE
            #include <dlfcn.h>
            #include <stdlib.h>
            #include <sys/time.h>
            #include <time.h>
            static long shift(void) {
                const char *offset = getenv("CLOCK_SHIFT_SECONDS");
                return offset == NULL ? 0 : atol(offset);
            }
            int clock_gettime(clockid_t id, struct timespec *now) {
                static int (*real)(clockid_t, struct timespec *);
                if (real == NULL) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
                int result = real(id, now);
                if (result == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) now->tv_sec += shift();
                return result;
            }
            int gettimeofday(struct timeval *restrict now, void *restrict zone) {
                static int (*real)(struct timeval *restrict, void *restrict);
                if (real == NULL)
                    real = (int (*)(struct timeval *restrict, void *restrict))dlsym(RTLD_NEXT, "gettimeofday");
                int result = real(now, zone);
                if (result == 0 && now != NULL) now->tv_sec += shift();
                return result;
            }
            time_t time(time_t *out) {
                struct timespec now;
                clock_gettime(CLOCK_REALTIME, &now);
                if (out != NULL) *out = now.tv_sec;
                return now.tv_sec;
            }
            """.write(toFile: source, atomically: true, encoding: .utf8)
            let built = try run("/usr/bin/gcc", ["-shared", "-fPIC", "-O2", "-o", library, source, "-ldl"])
            guard built.status == 0 else { throw BrokerError("gcc: \(built.error)") }
            return ["/usr/bin/env", "LD_PRELOAD=\(library)", "CLOCK_SHIFT_SECONDS=\(seconds)"]
        }

        /// Nonces used to be pruned by the wall clock: pushed forward past a command's expiry (a
        /// spoofed NTP server on the LAN), it made the store forget them, and a captured credit was
        /// applied again once the clock was back. A nonce now goes only once a later command of the
        /// authority proves its command expired.
        @Test func aClockPushedForwardForgetsNoNonce() async throws {
            let rig = try await FaultRig()
            defer { rig.killAgent() }
            try await rig.startAgent()
            let captured = try rig.send(.credit(owner: "erin", amount: 5))
            #expect(await eventually(within: 20) { (try? await balance(rig, "erin")) == 5 })
            #expect(rig.stopAgent() == 0)

            // Nine days ahead, the command long expired by this clock; the store is pruned at start.
            try await rig.startAgent(wrapper: try shiftedClock(by: 9 * 86_400, in: rig.directory))
            let ahead = ISO8601DateFormatter().string(from: Date().addingTimeInterval(9 * 86_400)).prefix(10)
            #expect(
                await eventually(within: 10) { tail(of: rig.logFile, lines: 400).contains(String(ahead)) },
                "the agent's clock is nine days ahead")
            try await Task.sleep(for: .seconds(1))
            #expect(rig.stopAgent() == 0)

            try await rig.startAgent()
            try rig.publish(command: captured, on: "credit")
            #expect(await eventually(within: 20) { tail(of: rig.logFile, lines: 400).contains("REASON=replayed") })
            #expect(try await balance(rig, "erin") == 5, "the captured credit was not applied again")
            #expect(rig.stopAgent() == 0)
        }

        /// A Pi without a real-time clock boots with an old time, under which a command that
        /// expired in the real world looks valid: it was applied. A later command of the authority
        /// shows the time has passed: one that expired before is now refused as outdated.
        @Test func aClockBehindTakesNoExpiredCommand() async throws {
            let rig = try await FaultRig()
            defer { rig.killAgent() }
            try await rig.startAgent()
            // Expired an hour ago: signed while valid and withheld since.
            let expired = try CommandSigner.sign(
                .credit(owner: "erin", amount: 5), gatewayID: FaultRig.gatewayID, key: rig.authority,
                expiresAt: UInt64(Date().timeIntervalSince1970) - 3600)
            try rig.send(.credit(owner: "frank", amount: 1), expiresIn: 7 * 86_400 - 600)
            #expect(await eventually(within: 20) { (try? await balance(rig, "frank")) == 1 })
            #expect(rig.stopAgent() == 0)

            // Booted two days behind, with nothing to say the clock is wrong.
            try await rig.startAgent(wrapper: try shiftedClock(by: -2 * 86_400, in: rig.directory))
            try rig.publish(command: expired, on: "credit")
            #expect(await eventually(within: 20) { tail(of: rig.logFile, lines: 400).contains("REASON=outdated") })
            #expect(try await balance(rig, "erin") == nil)
            #expect(rig.stopAgent() == 0)
        }

        func balance(_ rig: FaultRig, _ owner: String) async throws -> Int64? {
            try await Store(readingFrom: rig.dataDirectory + "/hotspotd.db").account(owner: owner)?.balance
        }

        /// Credits that add past Int64.max used to become a REAL in SQLite, read back as 0. The
        /// ledger now holds at most Store.maximumBalance; a credit past it is refused by name.
        @Test func aCreditPastTheLedgersLimitIsRefusedByName() async throws {
            let rig = try await FaultRig()
            defer { rig.killAgent() }
            try await rig.startAgent()
            try rig.send(.credit(owner: "erin", amount: Int64.max / 2))
            #expect(await eventually(within: 20) { (try? await balance(rig, "erin")) == Int64.max / 2 })
            try rig.send(.credit(owner: "erin", amount: Int64.max / 2))
            // A later command is the sign that the refused one was handled.
            try rig.send(.credit(owner: "frank", amount: 1))
            #expect(await eventually(within: 20) { (try? await balance(rig, "frank")) == 1 })
            #expect(
                try await balance(rig, "erin") == Int64.max / 2,
                "the refused credit changed nothing, and the balance reads back")
            #expect(await eventually(within: 10) { tail(of: rig.logFile, lines: 200).contains("REASON=balance_limit") })
            #expect(rig.stopAgent() == 0)
        }

        /// An owner "carol\0x" was stored whole and read back as "carol": the charges of x's sensor
        /// would have landed on carol's account. A control character in an owner is refused by name.
        @Test func anOwnerWithANulIsRefusedByName() async throws {
            let rig = try await FaultRig()
            defer { rig.killAgent() }
            try await rig.startAgent()
            try rig.send(.credit(owner: "carol\u{0}x", amount: 5))
            try rig.send(.pair(devAddr: 0x2601_2000, devEUI: nil, owner: "carol\u{0}x", nwkSKey: nil))
            try rig.send(.credit(owner: "frank", amount: 1))
            #expect(await eventually(within: 20) { (try? await balance(rig, "frank")) == 1 })
            #expect(try await balance(rig, "carol") == rig.granted["carol"], "nothing landed on carol's account")
            let store = try Store(readingFrom: rig.dataDirectory + "/hotspotd.db")
            #expect(try await store.pairing(devAddr: 0x2601_2000) == nil)
            #expect(
                await eventually(within: 10) {
                    tail(of: rig.logFile, lines: 200).components(separatedBy: "REASON=invalid_owner").count == 3
                })
            #expect(rig.stopAgent() == 0)
        }

        /// Pairing a DevAddr again under the same NwkSKey used to reset its frame counter, so that
        /// frames recorded off the air passed the MIC check again and were charged twice. The floor
        /// now stays unless the key changes.
        @Test func rePairingUnderTheSameKeyKeepsTheFrameCounterFloor() async throws {
            let rig = try await FaultRig()
            defer { rig.killAgent() }
            try await rig.startAgent()
            let alice = rig.sensors[0]
            let recorded = try LoRaWANCrypto.encodeDataFrame(
                devAddr: alice.devAddr, fCnt: 500, fPort: 2, payload: [1, 2, 3], nwkSKey: alice.nwkSKey,
                appSKey: alice.nwkSKey)
            let heard = ContinuousClock.now
            #expect(await rig.push(frames: [recorded]))
            #expect(await eventually(within: 20) { (try? await rig.debited().charges.count) == 1 })

            try rig.send(.pair(devAddr: alice.devAddr.rawValue, devEUI: nil, owner: "alice", nwkSKey: alice.nwkSKey))
            let store = try Store(readingFrom: rig.dataDirectory + "/hotspotd.db")
            #expect(
                await eventually(within: 20) {
                    ((try? await store.pairing(devAddr: alice.devAddr.rawValue))??.pairedAt ?? 1) > 1
                })
            #expect(
                try await store.pairing(devAddr: alice.devAddr.rawValue)?.lastFCnt == 500,
                "the floor survived the new pairing")
            // Past the meter's 5 s window for the same frame heard twice (two channels, two
            // forwarders), the replay is judged by its counter alone.
            try await Task.sleep(until: heard + .seconds(6))
            #expect(await rig.push(frames: [recorded]))
            #expect(await eventually(within: 10) { tail(of: rig.logFile, lines: 200).contains("REASON=old_fcnt") })
            #expect(try await rig.debited().charges.count == 1, "the replay was not charged")

            // A new key is a new session: its counter starts again.
            let newKey = [UInt8](repeating: 0x5A, count: 16)
            try rig.send(.pair(devAddr: alice.devAddr.rawValue, devEUI: nil, owner: "alice", nwkSKey: newKey))
            #expect(
                await eventually(within: 20) {
                    ((try? await store.pairing(devAddr: alice.devAddr.rawValue))??.nwkSKey) == newKey
                })
            #expect(try await store.pairing(devAddr: alice.devAddr.rawValue)?.lastFCnt == nil)
            let fresh = try LoRaWANCrypto.encodeDataFrame(
                devAddr: alice.devAddr, fCnt: 1, fPort: 2, payload: [4], nwkSKey: newKey, appSKey: newKey)
            #expect(await rig.push(frames: [fresh]))
            #expect(await eventually(within: 20) { (try? await rig.debited().charges.count) == 2 })
            #expect(rig.stopAgent() == 0)
        }

        /// Every new gateway EUI used to add a forwarder for good, its whole `stat` kept and a line
        /// logged: 200,000 PULL_DATA from invented EUIs took the agent to 278 MB. At most
        /// `maximumForwarders` are tracked now, the others refused within the log's budget, and
        /// the real forwarder goes on.
        @Test func aFloodOfInventedForwardersIsBounded() async throws {
            let rig = try await FaultRig()
            defer { rig.killAgent() }
            try await rig.startAgent()
            await rig.stream(for: 1)  // the real forwarder is known before the flood
            let before = try #require(rig.agentResidentBytes)
            func forwarderLines() -> Int {
                tail(of: rig.logFile, lines: 100_000).split(separator: "\n").filter { $0.contains("forwarder") }.count
            }
            let linesBefore = forwarderLines()
            let flood = 50_000
            for index in 0..<flood {
                let eui = UInt64(0xF1_0000_0000_0000) + UInt64(index)
                let header: [UInt8] = [2, UInt8(index >> 8 & 0xFF), UInt8(index & 0xFF), 0x02]
                let stat = #"{"stat":{"time":"\#(String(repeating: "x", count: 2_000))","rxnb":1}}"#
                rig.sendDatagram(header + (0..<8).map { UInt8(eui >> (56 - 8 * $0) & 0xFF) })
                if index % 10 == 0 {
                    // Some push a long stat too.
                    rig.sendDatagram(
                        [2, 0, 0, 0x00] + (0..<8).map { UInt8(eui >> (56 - 8 * $0) & 0xFF) } + Array(stat.utf8))
                }
                if index % 1_000 == 999 { try await Task.sleep(for: .milliseconds(5)) }
            }
            // What the flood left in the agent's socket buffer is read before the stream is judged.
            #expect(await eventually(within: 60) { await rig.push(frames: []) })
            let after = await rig.stream(for: 1)
            #expect(after.acknowledged == after.sent, "the real forwarder is still served")
            let grown = (rig.agentResidentBytes ?? .max) - before
            #expect(grown < 4 << 20, "resident memory grew by \(grown / 1024) KB over \(flood) invented forwarders")
            let lines = forwarderLines() - linesBefore
            #expect(
                lines <= 42,
                """
                \(lines) log lines about forwarders for the flood: a burst of 20 announcements and 20 refusals, then \
                one a minute
                """
            )
            #expect(tail(of: rig.logFile, lines: 100_000).contains("packet forwarder refused"))
            _ = await eventually(within: 30) { await rig.ledgerProblem() == nil }
            let problem = await rig.ledgerProblem()
            #expect(problem == nil)
            #expect(rig.stopAgent() == 0)
        }

        /// `semtech_udp.forwarders` names the forwarder and where it sends from: anyone else on the
        /// LAN, with another EUI or with the forwarder's own EUI from another address, gets no
        /// acknowledgement, no downlinks and no charge for the frames they carry, only a count.
        @Test func onlyTheListedForwarderIsTaken() async throws {
            let rig = try await FaultRig(semtechUDP: #"forwarders = ["AA555A0000000001@127.0.0.1"]"#)
            defer { rig.killAgent() }
            try await rig.startAgent()
            #expect(await rig.pullData())
            let alice = rig.sensors[0]
            let bob = rig.sensors[1]
            let heard = try LoRaWANCrypto.encodeDataFrame(
                devAddr: alice.devAddr, fCnt: 7, fPort: 2, payload: [1], nwkSKey: alice.nwkSKey, appSKey: alice.nwkSKey)
            #expect(await rig.push(frames: [heard]))
            #expect(await eventually(within: 20) { (try? await rig.debited().charges.count) == 1 })

            // Bob's frame, valid, from elsewhere: the listed EUI from another host, another EUI
            // from the forwarder's host.
            let forged = try LoRaWANCrypto.encodeDataFrame(
                devAddr: bob.devAddr, fCnt: 9, fPort: 2, payload: [2], nwkSKey: bob.nwkSKey, appSKey: bob.nwkSKey)
            let body = Array(
                #"""
                {"rxpk":[{"tmst":1000,"chan":0,"rfch":0,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","codr":\#
                "4/5","rssi":-60,"lsnr":9.5,"size":\#(forged.count),"data":"\#(Base64.encode(forged))"}]}
                """#
                .utf8)
            let elsewhere = try UDPSocket(binding: SocketAddress("127.0.0.2:0")!)
            let sameHost = try UDPSocket(binding: SocketAddress("127.0.0.1:0")!)
            let agent = SocketAddress("127.0.0.1:\(rig.udpPort)")!
            let otherEUI: [UInt8] = [0xAA, 0x55, 0x5A, 0, 0, 0, 0, 0x02]
            elsewhere.send([2, 0x10, 0x01, 0x00] + FaultRig.forwarderEUI + body, to: agent)
            elsewhere.send([2, 0x10, 0x02, 0x02] + FaultRig.forwarderEUI, to: agent)
            sameHost.send([2, 0x10, 0x03, 0x00] + otherEUI + body, to: agent)
            sameHost.send([2, 0x10, 0x04, 0x02] + otherEUI, to: agent)
            // The listed forwarder is served after them: they were handled.
            #expect(await rig.push(frames: []))
            #expect(
                elsewhere.receive(timeoutMilliseconds: 500) == nil,
                "no PUSH_ACK or PULL_ACK for the listed EUI from another host")
            #expect(sameHost.receive(timeoutMilliseconds: 100) == nil, "none for another EUI")
            try await Task.sleep(for: .seconds(1))
            #expect(try await rig.debited().charges.count == 1, "bob's frame was not charged")
            #expect(tail(of: rig.logFile, lines: 200).contains("not in semtech_udp.forwarders"))
            #expect(
                await eventually(within: 30) {
                    let status = try? await runHotspotd(
                        ["status", "--json", "--data-dir", rig.dataDirectory], in: rig.directory)
                    return status?.stdout.contains(#""forwarder_refusals":{"not_listed":4}"#) == true
                })
            #expect(rig.stopAgent() == 0)
        }

        /// Bound to an address others can reach, with no forwarder named, the agent says so as it
        /// starts: anyone who reaches the port is a forwarder to it.
        @Test func anOpenPortWithNoForwardersNamedIsSaidLoudly() async throws {
            let rig = try await FaultRig(bindHost: "0.0.0.0")
            defer { rig.killAgent() }
            try await rig.startAgent()
            #expect(
                tail(of: rig.logFile, lines: 200).contains(
                    "semtech_udp.bind is reachable from the network and semtech_udp.forwarders is empty"))
            #expect(await rig.push(frames: []))
            #expect(rig.stopAgent() == 0)
        }

        /// A TX_ACK used to be matched by token and EUI alone, and any error it reported gave the
        /// frame's airtime back. Now one from another address than the PULL_RESP went to is
        /// refused, and once the forwarder has a frame its airtime stays counted whatever the
        /// TX_ACK says: errors cannot stretch the duty cycle.
        @Test func forgedTxAcksNeitherDecideTheOutcomeNorHandAirtimeBack() async throws {
            let rig = try await FaultRig()
            defer { rig.killAgent() }
            try await rig.startAgent()
            let acks = try await rig.watch(event: "ack")
            #expect(await rig.pullData())
            // SF12 at 868.9 MHz: 1.16 s on air in a 0.1 % sub-band, a budget of 3.6 s an hour, so
            // three fit and a fourth does not.
            func downlink(_ id: UInt32) -> Gw_DownlinkFrame { FaultRig.downlink(id, frequency: 868_900_000) }
            @Sendable func statuses() -> [UInt32: Gw_TxAckStatus] {
                var result: [UInt32: Gw_TxAckStatus] = [:]
                for message in acks.messages {
                    guard let ack = try? Gw_DownlinkTxAck(serializedBytes: message),
                        let status = ack.items.first?.status
                    else { continue }
                    result[ack.downlinkID] = status
                }
                return result
            }
            let intruder = try UDPSocket(binding: SocketAddress("127.0.0.1:0")!)

            try rig.publish(downlink(1))
            let first = try #require(await rig.nextPullResponse(), "no PULL_RESP: \(tail(of: rig.logFile, lines: 30))")
            rig.txAck(token: first.token, error: "COLLISION_PACKET", from: intruder)
            try await Task.sleep(for: .milliseconds(100))
            rig.txAck(token: first.token, error: nil)
            #expect(await eventually(within: 10) { statuses()[1] != nil })
            #expect(statuses()[1] == .ok, "the forwarder's own TX_ACK decided, not the intruder's")

            for id: UInt32 in 2...3 {
                try rig.publish(downlink(id))
                let response = try #require(
                    await rig.nextPullResponse(), "no PULL_RESP: \(tail(of: rig.logFile, lines: 30))")
                rig.txAck(token: response.token, error: "COLLISION_PACKET")
                #expect(await eventually(within: 10) { statuses()[id] != nil })
                #expect(statuses()[id] == .collisionPacket)
            }
            try rig.publish(downlink(4))
            #expect(await eventually(within: 10) { statuses()[4] != nil })
            #expect(statuses()[4] == .dutyCycleOverflow, "the airtime of frames the forwarder was given stays spent")
            #expect(await rig.nextPullResponse(within: 1) == nil)
            // Another gateway EUI registering brings no fresh budget: the budget is the radio's.
            intruder.send(
                [2, 0x30, 0x01, 0x02] + [0xAA, 0x55, 0x5A, 0, 0, 0, 0, 0x02],
                to: SocketAddress("127.0.0.1:\(rig.udpPort)")!
            )
            #expect(intruder.receive(timeoutMilliseconds: 5_000)?.bytes == [2, 0x30, 0x01, 0x04])
            var throughIntruder = downlink(5)
            throughIntruder.items[0].txInfo.context = Data([0, 0, 0, 1, 0xAA, 0x55, 0x5A, 0, 0, 0, 0, 0x02])
            try rig.publish(throughIntruder)
            #expect(await eventually(within: 10) { statuses()[5] != nil })
            #expect(statuses()[5] == .dutyCycleOverflow, "the same radio's budget, whichever EUI asks")
            #expect(intruder.receive(timeoutMilliseconds: 500) == nil)
            #expect(
                await eventually(within: 30) {
                    let status = try? await runHotspotd(
                        ["status", "--json", "--data-dir", rig.dataDirectory], in: rig.directory)
                    return status?.stdout.contains(#""tx_ack_unmatched":1"#) == true
                })
            #expect(rig.stopAgent() == 0)
        }

        /// With the broker away, garbage on the air used to become a `rejected` row and a notice
        /// line per frame, and any 52-byte frame starting 0xE0 a signed witness row, none of them
        /// under the outbox cap (which then pushed out uplinks). Now refusals are reported per
        /// (DevAddr, reason) with a count within a budget, witnesses only for plausible beacons
        /// within theirs, and every kind of row has a cap that evicts nothing else.
        @Test func garbageOnTheAirWhileTheBrokerIsAwayIsBounded() async throws {
            let rig = try await FaultRig(mqtt: "outbox_max = 100")
            defer { rig.killAgent() }
            try await rig.startAgent()
            rig.broker.stop()
            let alice = rig.sensors[0]
            let bob = rig.sensors[1]
            let wrongKey = [UInt8](repeating: 0x77, count: 16)
            let attack = 2_000
            var real = 0
            for index in 0..<attack / 8 {
                // Eight frames of alice's DevAddr whose MIC fails, and a real uplink of bob's every
                // fifth datagram.
                var frames = try (0..<8).map { offset in
                    try LoRaWANCrypto.encodeDataFrame(
                        devAddr: alice.devAddr, fCnt: UInt32(index * 8 + offset + 1), fPort: 2, payload: [0xBA, 0xD0],
                        nwkSKey: wrongKey, appSKey: wrongKey)
                }
                if index % 5 == 0 {
                    real += 1
                    frames.append(
                        try LoRaWANCrypto.encodeDataFrame(
                            devAddr: bob.devAddr, fCnt: UInt32(real), fPort: 2, payload: [1], nwkSKey: bob.nwkSKey,
                            appSKey: bob.nwkSKey))
                }
                #expect(await rig.push(frames: frames))
            }
            // 2,000 frames with a beacon's shape: half at the channel and data rate a beacon
            // of their data would use (SF12), half not.
            for index in 0..<attack / 8 {
                let packets = (0..<8).map { offset -> String in
                    let data =
                        [UInt8(truncatingIfNeeded: offset)]
                        + withUnsafeBytes(of: UInt32(index * 8 + offset).bigEndian, Array.init)
                        + [UInt8](repeating: 0x5A, count: 46)
                    // The first two bytes (offset, 0) pick channel `offset` of Helium's EU868 plan,
                    // 867.1 MHz + 0.2 MHz × offset; the odd ones are heard on the next channel.
                    let channel = Int(data[0]) | Int(data[1]) << 8
                    let frequency = 867.1 + 0.2 * Double(offset % 2 == 0 ? channel % 8 : (channel + 1) % 8)
                    return
                        #"""
                        {"tmst":1,"chan":0,"rfch":0,"freq":\#(frequency),"stat":1,"modu":"LORA","datr":"SF12BW125",\#
                        "codr":"4/5","rssi":-90,"lsnr":5,"size":52,"data":"\#(Base64.encode([0xE0] + data))"}
                        """#
                }
                rig.pushData(json: #"{"rxpk":[\#(packets.joined(separator: ","))]}"#, token: 0xE000 + UInt16(index))
                if index % 20 == 0 { #expect(await rig.push(frames: [])) }
            }
            #expect(await rig.push(frames: []))
            let kinds = try await rig.outboxKinds()
            #expect(kinds[.uplink] == real, "every real uplink waits in the outbox: \(kinds)")
            #expect(
                (kinds[.rejected] ?? 0) <= 21,
                "\(attack) refusals of one (DevAddr, reason) make at most a burst of reports: \(kinds)")
            #expect((kinds[.witness] ?? 0) == CoverageService.witnessBurst, "witnesses within the budget: \(kinds)")
            let log = tail(of: rig.logFile, lines: 100_000).split(separator: "\n")
            let refusalLines = log.filter { $0.contains("uplink refused") || $0.contains("uplinks refused") }.count
            #expect(refusalLines <= 21, "\(refusalLines) lines for \(attack) refused frames")
            #expect(log.filter { $0.contains("beacon witnessed") }.count == CoverageService.witnessBurst)
            // Back: the real uplinks go out, and the refusals are counted in what went out.
            try rig.broker.start()
            let sent = real
            #expect(
                await eventually(within: 30) {
                    rig.publishedUplinks().filter { $0.rxInfo.metadata["owner"] == "bob" }.count == sent
                })
            #expect(rig.stopAgent() == 0)
        }

        /// 2,048 forged join requests of a paired DevEUI used to cost its owner 1,344 DC, and the
        /// sensor's real join, whose DevNonce a forgery had used, was then refused as replayed.
        /// Now joins are forwarded uncharged whatever their DevNonce, and only the one the network
        /// answers through this hotspot is charged.
        @Test func forgedJoinsNeitherDrainTheOwnerNorLockTheSensorOut() async throws {
            let rig = try await FaultRig()
            defer { rig.killAgent() }
            try await rig.startAgent()
            let devEUI: UInt64 = 0x70B3_D57E_D000_0001
            try rig.send(.pair(devAddr: 0x2601_3000, devEUI: devEUI, owner: "alice", nwkSKey: nil))
            let store = try Store(readingFrom: rig.dataDirectory + "/hotspotd.db")
            #expect(
                await eventually(within: 20) { ((try? await store.pairing(devAddr: 0x2601_3000))??.devEUI) == devEUI })
            let before = try #require(try await store.account(owner: "alice")?.balance)
            func join(nonce: UInt16, mic: [UInt8]) -> [UInt8] {
                let joinEUI: UInt64 = 0x70B3_D57E_F000_0000
                return [0x00] + withUnsafeBytes(of: joinEUI.littleEndian, Array.init)
                    + withUnsafeBytes(of: devEUI.littleEndian, Array.init)
                    + withUnsafeBytes(of: nonce.littleEndian, Array.init) + mic
            }
            for batch in 0..<256 {
                let frames = (0..<8).map {
                    join(nonce: UInt16(batch * 8 + $0), mic: [0xF0, 0x0F, UInt8(batch & 0xFF), UInt8($0)])
                }
                #expect(await rig.push(frames: frames))
            }
            let real = join(nonce: 5, mic: [0x12, 0x34, 0x56, 0x78])
            #expect(await rig.push(frames: [real]))
            #expect(
                await eventually(within: 30) { rig.publishedUplinks().contains { Array($0.phyPayload) == real } },
                "the real join is forwarded")
            #expect(try await store.account(owner: "alice")?.balance == before, "2,049 joins forwarded, none charged")
            #expect(rig.publishedUplinks().filter { $0.phyPayload.first == 0x00 }.count == 2_049)

            // The network answers the real one through this hotspot: that one is charged.
            let uplink = try #require(rig.publishedUplinks().first { Array($0.phyPayload) == real })
            #expect(uplink.rxInfo.metadata["dc"] == "0" && uplink.rxInfo.metadata["join_dc"] == "1")
            #expect(await rig.pullData())
            var accept = FaultRig.downlink(
                77, frequency: 868_100_000, sf: 7, payload: [0x20] + [UInt8](repeating: 0xA5, count: 16),
                delaySeconds: 5,
                context: uplink.rxInfo.context)
            try rig.publish(accept)
            let response = try #require(await rig.nextPullResponse())
            rig.txAck(token: response.token, error: nil)
            #expect(await eventually(within: 20) { (try? await store.account(owner: "alice")?.balance) == before - 1 })
            #expect(
                await eventually(within: 10) {
                    tail(of: rig.logFile, lines: 400).contains("join answered through this hotspot charged")
                })
            // A second join-accept for the same join charges nothing more.
            accept.downlinkID = 78
            try rig.publish(accept)
            let again = try #require(await rig.nextPullResponse())
            rig.txAck(token: again.token, error: nil)
            try await Task.sleep(for: .seconds(2))
            #expect(try await store.account(owner: "alice")?.balance == before - 1)
            #expect(!tail(of: rig.logFile, lines: 5_000).contains("replayed"))
            #expect(rig.stopAgent() == 0)
        }

        /// Downlinks, pairings and credits used to share one queue, bounded at 10,000 messages of
        /// any size: a downlink waiting for its TX_ACKs held every command behind it, and a flood
        /// of large messages grew the agent. Commands now wait apart from downlinks, each queue
        /// bounded in bytes, and a message larger than any downlink is refused by its size unread.
        @Test func aLongDownlinkHoldsUpNoCommandAndIncomingMessagesAreBoundedInBytes() async throws {
            let rig = try await FaultRig()
            defer { rig.killAgent() }
            try await rig.startAgent()
            #expect(await rig.pullData())
            // 60 items, each waiting a second for a TX_ACK that never comes.
            var slow = FaultRig.downlink(
                1, frequency: 869_525_000, sf: 7, payload: [0x60] + [UInt8](repeating: 0x42, count: 200), items: 60)
            #expect(try (slow.serializedBytes() as [UInt8]).count < 16_384)
            try rig.publish(slow)
            #expect(await rig.nextPullResponse() != nil, "the long downlink is under way")
            let before = try #require(rig.agentResidentBytes)

            // 300 more like it (4 MB), and a command of 20 MB.
            for id in 2...301 {
                slow.downlinkID = UInt32(id)
                try rig.publish(slow)
            }
            let huge = rig.directory + "/huge.bin"
            try Data(count: 20 << 20).write(to: URL(fileURLWithPath: huge))
            #expect(
                try run(
                    "/usr/bin/mosquitto_pub",
                    [
                        "-p", "\(rig.broker.port)", "-q", "1", "-t",
                        "eu868/gateway/\(FaultRig.gatewayID)/command/credit",
                        "-f", huge,
                    ]
                ).status == 0)

            // A credit behind them all is applied at once.
            let sent = ContinuousClock.now
            try rig.send(.credit(owner: "erin", amount: 5))
            #expect(
                await eventually(within: 10) { (try? await balance(rig, "erin")) == 5 },
                "the credit waited behind the downlinks")
            let waited = ContinuousClock.now - sent
            #expect(waited < .seconds(10))
            let log = tail(of: rig.logFile, lines: 2_000)
            #expect(log.contains("a message of 20971520 bytes, larger than any signed command"), "refused by its size")
            #expect(log.contains("incoming message dropped"))
            let grown = (rig.agentResidentBytes ?? .max) - before
            #expect(grown < 24 << 20, "resident memory grew by \(grown >> 20) MB")
        }

        /// Where systemd-timesyncd runs and says the clock is not synchronised yet, expiry cannot be
        /// judged: commands are refused (by name) until it is.
        @Test func commandsWaitForTimesyncdToSynchroniseTheClock() async throws {
            let rig = try await FaultRig()
            defer { rig.killAgent() }
            // A /run of its own, with timesyncd's state directory and no `synchronized` in it.
            try await rig.startAgent(wrapper: [
                "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                #"mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/timesync && exec "$0" "$@""#,
            ])
            let agent = try #require(rig.agent)
            try rig.send(.credit(owner: "erin", amount: 5))
            #expect(
                await eventually(within: 20) {
                    tail(of: rig.logFile, lines: 400).contains("REASON=clock_unsynchronized")
                })
            #expect(try await balance(rig, "erin") == nil)

            #expect(
                FileManager.default.createFile(
                    atPath: "/proc/\(agent)/root/run/systemd/timesync/synchronized", contents: Data()))
            try rig.send(.credit(owner: "erin", amount: 5))
            #expect(await eventually(within: 20) { (try? await balance(rig, "erin")) == 5 })
            #expect(rig.stopAgent() == 0)
        }

        /// The transmit policy used to check a downlink's centre frequency and power only: half a
        /// signal outside the band, a data rate the region has not, the antenna's gain and a
        /// preamble of an hour all went to the forwarder with status OK. Each is now refused with
        /// the matching TX_ACK status, and nothing reaches the forwarder.
        @Test func downlinksTheRegionForbidsAreRefused() async throws {
            let rig = try await FaultRig(radio: "antenna_gain = 3")
            defer { rig.killAgent() }
            try await rig.startAgent()
            let acks = try await rig.watch(event: "ack")
            #expect(await rig.pullData())
            func downlink(
                _ id: UInt32, frequency: UInt32, sf: UInt32 = 12, bandwidth: UInt32 = 125_000, power: Int32 = 13,
                preamble: UInt32 = 8
            ) -> Gw_DownlinkFrame {
                FaultRig.downlink(
                    id, frequency: frequency, sf: sf, bandwidth: bandwidth, power: power, preamble: preamble)
            }
            @Sendable func status(_ id: UInt32) -> Gw_TxAckStatus? {
                acks.messages.compactMap { try? Gw_DownlinkTxAck(serializedBytes: $0) }.first { $0.downlinkID == id }?
                    .items
                    .first?.status
            }
            let cases: [(Gw_DownlinkFrame, Gw_TxAckStatus, String)] = [
                (downlink(1, frequency: 869_640_000), .txFreq, "869.5775–869.7025 MHz straddles two sub-bands"),
                (
                    downlink(2, frequency: 869_525_000, sf: 12, bandwidth: 500_000), .internalError,
                    "SF12 at 500 kHz is no EU868 data rate"
                ),
                (
                    downlink(3, frequency: 868_100_000, power: 14), .txPower,
                    "14 dBm into a 3 dBi antenna is 17 dBm EIRP, over 16.15"
                ),
                (downlink(4, frequency: 869_525_000, preamble: 65_535), .dutyCycleOverflow, "a preamble of 35 minutes"),
            ]
            for (frame, expected, why) in cases {
                try rig.publish(frame)
                #expect(await eventually(within: 10) { status(frame.downlinkID) != nil })
                #expect(status(frame.downlinkID) == expected, "\(why)")
            }
            #expect(await rig.nextPullResponse(within: 1) == nil, "nothing reached the forwarder")
            // What the rules allow still goes out.
            try rig.publish(downlink(5, frequency: 869_525_000, power: 13))
            let response = try #require(await rig.nextPullResponse())
            rig.txAck(token: response.token, error: nil)
            #expect(await eventually(within: 10) { status(5) == .ok })
            #expect(rig.stopAgent() == 0)
        }

        /// The NwkSKey used to travel in the clear inside pair commands: anyone reading
        /// `command/pair` could then make frames that pass its MIC and charge the owner. A reader of
        /// the broker now sees only the key sealed to the gateway's X25519 key; the gateway opens it
        /// and checks MICs with it; a pair in the clear is refused.
        @Test func aBrokerReaderLearnsNoNwkSKey() async throws {
            let rig = try await FaultRig()
            defer { rig.killAgent() }
            try await rig.startAgent()
            let reader = try await rig.watchCommands()
            let key: [UInt8] = (0..<16).map { UInt8(0xA0 + $0) }
            let devAddr = DevAddr(0x2601_4000)
            try rig.send(.pair(devAddr: devAddr.rawValue, devEUI: nil, owner: "alice", nwkSKey: key))
            let store = try Store(readingFrom: rig.dataDirectory + "/hotspotd.db")
            #expect(
                await eventually(within: 20) {
                    ((try? await store.pairing(devAddr: devAddr.rawValue))??.nwkSKey) == key
                })
            #expect(await eventually(within: 10) { !reader.messages.isEmpty })
            #expect(
                reader.messages.allSatisfy { !Hex.encode($0).contains(Hex.encode(key)) },
                "the key is nowhere in what the broker carried")

            // With the key, frames are checked: a forged MIC is refused, a real frame charged.
            let forged = try LoRaWANCrypto.encodeDataFrame(
                devAddr: devAddr, fCnt: 1, fPort: 2, payload: [1], nwkSKey: [UInt8](repeating: 0, count: 16),
                appSKey: key)
            let real = try LoRaWANCrypto.encodeDataFrame(
                devAddr: devAddr, fCnt: 2, fPort: 2, payload: [1], nwkSKey: key, appSKey: key)
            #expect(await rig.push(frames: [forged, real]))
            #expect(await eventually(within: 20) { (try? await rig.debited().charges.count) == 1 })
            #expect(await eventually(within: 10) { tail(of: rig.logFile, lines: 400).contains("REASON=bad_mic") })

            // A key in the clear is refused, and the pairing stays as it was.
            try rig.send(.pair(devAddr: devAddr.rawValue, devEUI: nil, owner: "bob", nwkSKey: key), sealed: false)
            #expect(await eventually(within: 20) { tail(of: rig.logFile, lines: 400).contains("REASON=unsealed_key") })
            #expect(try await store.pairing(devAddr: devAddr.rawValue)?.owner == "alice")
            #expect(rig.stopAgent() == 0)
        }

        /// Once a second forwarder registered, a beacon (tied to no uplink) had no forwarder to go
        /// through and was never sent. It now goes through the first forwarder of
        /// `semtech_udp.forwarders` that is ready (or the first registered), and the log says which.
        @Test func beaconsGoThroughTheConfiguredForwarderWhenSeveralRegister() async throws {
            let rig = try await FaultRig(
                semtechUDP: #"forwarders = ["AA555A0000000002", "AA555A0000000001"]"#, coverage: #"interval = "1m""#)
            defer { rig.killAgent() }
            try await rig.startAgent()
            #expect(await rig.pullData(), "the rig's forwarder registers first")
            let second = try UDPSocket(binding: SocketAddress("127.0.0.1:0")!)
            let secondEUI: [UInt8] = [0xAA, 0x55, 0x5A, 0, 0, 0, 0, 0x02]
            second.send([2, 0x20, 0x01, 0x02] + secondEUI, to: SocketAddress("127.0.0.1:\(rig.udpPort)")!)
            #expect(second.receive(timeoutMilliseconds: 5_000)?.bytes == [2, 0x20, 0x01, 0x04], "PULL_ACK")
            // The beacon comes at a random moment of a minute-aligned window: of this one, or, when
            // that moment had passed at start, of the next (up to two minutes). Forwarders say
            // PULL_DATA every 10 s.
            var beacon: [UInt8]?
            let deadline = ContinuousClock.now + .seconds(130)
            var keepAlive = ContinuousClock.now
            while beacon == nil, ContinuousClock.now < deadline {
                if let (bytes, _) = second.receive(timeoutMilliseconds: 500), bytes.count > 4, bytes[3] == 0x03 {
                    beacon = bytes
                }
                if ContinuousClock.now - keepAlive > .seconds(10) {
                    keepAlive = ContinuousClock.now
                    second.send([2, 0x20, 0x02, 0x02] + secondEUI, to: SocketAddress("127.0.0.1:\(rig.udpPort)")!)
                    _ = await rig.pullData()
                }
            }
            let pullResponse = try #require(
                beacon, "no beacon reached the configured forwarder: \(tail(of: rig.logFile, lines: 20))")
            let txpk = String(decoding: pullResponse[4...], as: UTF8.self)
            #expect(txpk.contains(#""datr":"SF12BW125""#), "\(txpk)")
            #expect(await rig.nextPullResponse(within: 0.5) == nil, "the other forwarder was not asked")
            #expect(
                tail(of: rig.logFile, lines: 400).contains(
                    "go through the first of semtech_udp.forwarders that is ready"))
            #expect(rig.stopAgent() == 0)
        }

        /// The same rules in the regions with a dwell time and listen-before-talk: in US915, half
        /// a 500 kHz signal outside the band, SF12 at 7.8 kHz and a 125 kHz frame over 400 ms; in
        /// KR920, any frame through a forwarder not configured as sensing the channel.
        @Test(arguments: ["US915", "KR920"])
        func downlinksOtherRegionsForbidAreRefused(region: String) async throws {
            let rig = try await FaultRig(region: region)
            defer { rig.killAgent() }
            try await rig.startAgent()
            let acks = try await rig.watch(event: "ack")
            #expect(await rig.pullData())
            @Sendable func status(_ id: UInt32) -> Gw_TxAckStatus? {
                acks.messages.compactMap { try? Gw_DownlinkTxAck(serializedBytes: $0) }.first { $0.downlinkID == id }?
                    .items
                    .first?.status
            }
            let cases: [(Gw_DownlinkFrame, Gw_TxAckStatus, String)] =
                region == "US915"
                ? [
                    (
                        FaultRig.downlink(1, frequency: 902_000_000, sf: 12, bandwidth: 500_000, power: 30), .txFreq,
                        "901.75–902.25 MHz"
                    ),
                    (
                        FaultRig.downlink(2, frequency: 928_000_000, sf: 12, bandwidth: 500_000, power: 30), .txFreq,
                        "927.75–928.25 MHz"
                    ),
                    (
                        FaultRig.downlink(
                            3, frequency: 915_000_000, sf: 12, bandwidth: 7_800, power: 30, preamble: 65_535),
                        .internalError, "SF12 at 7.8 kHz"
                    ),
                    (
                        FaultRig.downlink(
                            4, frequency: 902_300_000, sf: 10, payload: [UInt8](repeating: 0x60, count: 40)),
                        .internalError, "534 ms at 125 kHz"
                    ),
                ]
                : [
                    (
                        FaultRig.downlink(1, frequency: 922_100_000, sf: 7), .internalError,
                        "KR920 without listen-before-talk"
                    )
                ]
            for (frame, expected, why) in cases {
                try rig.publish(frame)
                #expect(await eventually(within: 10) { status(frame.downlinkID) != nil })
                #expect(status(frame.downlinkID) == expected, "\(why)")
            }
            #expect(await rig.nextPullResponse(within: 1) == nil, "nothing reached the forwarder")
            if region == "US915" {
                try rig.publish(FaultRig.downlink(5, frequency: 923_300_000, sf: 12, bandwidth: 500_000, power: 26))
                let response = try #require(await rig.nextPullResponse())
                rig.txAck(token: response.token, error: nil)
                #expect(await eventually(within: 10) { status(5) == .ok })
            }
            #expect(rig.stopAgent() == 0)
        }
    }
}
