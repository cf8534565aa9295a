import CSQLite
import ChirpStack
import Clocks
import Cryptography
import LoRaWAN
import Messages
import Radio
import Store
import Synchronization
import TestSupport
import Testing
import Wire

@testable import Credits

@Suite(.capturingLogs) struct PricingTests {
    @Test(arguments: [(12, 1), (24, 1), (25, 2), (48, 2), (49, 3), (255, 11), (0, 1)])
    func oneCreditPerTwentyFourBytesRoundedUp(length: Int, credits: Int64) {
        #expect(Pricing.credits(forPayloadOf: length) == credits)
    }
}

@Suite(.capturingLogs) struct MeterTests {
    let clock = TestClock()
    let store: Store

    init() throws {
        store = try temporaryStore()
    }

    func meter(_ settings: MeterSettings = MeterSettings()) -> Meter {
        let clock = self.clock
        return Meter(
            store: store, topics: topics, settings: settings, now: { clock.nanoseconds },
            arrivalClock: { clock.nanoseconds })
    }

    func pairAndCredit(_ credits: Int64, key: [UInt8]? = nwkSKey, devEUI: UInt64? = nil) async throws {
        _ = try await store.pair(
            Pairing(devAddr: sensor.rawValue, devEUI: devEUI, owner: "alice", nwkSKey: key, pairedAt: 1),
            nonce: secureRandomBytes(16), expiresAt: .max)
        if credits > 0 {
            _ = try await store.credit(
                owner: "alice", amount: credits, nonce: secureRandomBytes(16), expiresAt: .max, at: 1)
        }
    }

    func uplinksInOutbox() async throws -> [Gw_UplinkFrame] {
        try await store.outbox().filter { $0.kind == .uplink || $0.kind == .uncharged }.map {
            try Gw_UplinkFrame(serializedBytes: $0.payload)
        }
    }

    @Test func aPairedUplinkIsChargedAndForwardedWithItsMetadata() async throws {
        try await pairAndCredit(10)
        let frame = try uplink(fCnt: 1, payload: [UInt8](repeating: 7, count: 20), at: clock.nanoseconds)
        #expect(frame.payload.count == 33, "20 bytes and 13 of LoRaWAN")
        #expect(try await meter().meter(frame) == .forwarded(seq: 1, credits: 2, balance: 8, owner: "alice"))
        let forwarded = try #require(try await uplinksInOutbox().first)
        #expect(Array(forwarded.phyPayload) == frame.payload)
        #expect(forwarded.rxInfo.metadata == ["dc": "2", "balance": "8", "owner": "alice", "seq": "1"])
        #expect(forwarded.rxInfo.gatewayID == gatewayID)
        #expect(forwarded.txInfo.frequency == 868_100_000)
        #expect(
            forwarded.txInfo.modulation.lora.spreadingFactor == 7
                && forwarded.txInfo.modulation.lora.bandwidth == 125_000)
        #expect(forwarded.rxInfo.crcStatus == .crcOk)
        #expect(try await store.pairing(devAddr: sensor.rawValue)?.lastFCnt == 1)
    }

    /// An owner who forgot to pair a sensor sees why it is not charged: its first uplink is
    /// said once, whether it is dropped or forwarded uncharged.
    @Test func anUnpairedSensorsFirstUplinkIsSaidOnce() async throws {
        let clock = self.clock
        for forward in [false, true] {
            let log = CapturedLog()
            let meter = Meter(
                store: store, topics: topics, settings: MeterSettings(forwardUnpaired: forward), logger: log.logger,
                now: { clock.nanoseconds }, arrivalClock: { clock.nanoseconds })
            for fCnt in 1...3 {
                _ = try await meter.meter(try uplink(fCnt: UInt32(fCnt), payload: [UInt8(fCnt)]))
            }
            let said = log.entries(atLeast: .info).filter { $0.metadata["SENSOR"] == "DevAddr \(sensor)" }
            #expect(said.count == 1, "forward_unpaired = \(forward)")
            #expect(
                said.first?.message.contains(forward ? "forwarded uncharged" : "credits.forward_unpaired = true")
                    == true)
            // An hour on, it is said again.
            clock.nanoseconds += 3_600_000_000_000
            _ = try await meter.meter(try uplink(fCnt: 4, payload: [4]))
            #expect(log.entries(atLeast: .info).filter { $0.metadata["SENSOR"] == "DevAddr \(sensor)" }.count == 2)
        }
    }

    /// Other networks' sensors fill the air: a sensor seen after hundreds of others is still said.
    @Test func anUnpairedSensorIsSaidAfterManyOthers() async throws {
        let clock = self.clock
        let log = CapturedLog()
        let meter = Meter(
            store: store, topics: topics, settings: MeterSettings(), logger: log.logger, now: { clock.nanoseconds },
            arrivalClock: { clock.nanoseconds })
        for index in 0..<600 {
            clock.nanoseconds += 1_000_000
            _ = try await meter.meter(
                try uplink(fCnt: 1, payload: [UInt8(index & 0xFF)], devAddr: DevAddr(0x0100_0000 + UInt32(index))))
        }
        // The 600 were said within the budget: 20 lines, then one a minute.
        #expect(log.entries(atLeast: .info).count <= 21)
        clock.nanoseconds += 3_600_000_000_000
        _ = try await meter.meter(try uplink(fCnt: 1))
        #expect(log.entries(atLeast: .info).contains { $0.metadata["SENSOR"] == "DevAddr \(sensor)" })
    }

    @Test func aForgedMICIsRefusedAndNotCharged() async throws {
        try await pairAndCredit(10)
        let forged = try uplink(fCnt: 1, key: [UInt8](repeating: 0x99, count: 16))
        #expect(try await meter().meter(forged) == .refused(.badMIC))
        #expect(try await store.account(owner: "alice")?.balance == 10)
        #expect(try await uplinksInOutbox().isEmpty)
        let rejected = try await store.outbox().filter { $0.kind == .rejected }.map {
            try Hotspotd_Rejection(serializedBytes: $0.payload)
        }
        #expect(rejected.map(\.reason) == ["bad_mic"])
        #expect(rejected.first?.devAddr == "26011BDA")
    }

    @Test func aReplayedOrOldFrameCounterIsRefused() async throws {
        try await pairAndCredit(10)
        let meter = meter()
        clock.nanoseconds += 10_000_000_000
        #expect(try await meter.meter(uplink(fCnt: 5, at: clock.nanoseconds)) != .refused(.oldFCnt))
        clock.nanoseconds += 10_000_000_000
        #expect(
            try await meter.meter(uplink(fCnt: 5, at: clock.nanoseconds)) == .refused(.oldFCnt),
            "the same counter again, after the duplicate window")
        #expect(try await meter.meter(uplink(fCnt: 4, at: clock.nanoseconds)) == .refused(.oldFCnt))
        #expect(try await store.account(owner: "alice")?.balance == 9, "charged once")
    }

    @Test func aBatchDecidesEachFrameAsIfAlone() async throws {
        // 1 DC left; FCnt 10 needs 2 DC, then FCnt 9 (out of order, another forwarder) needs 1.
        // Alone, 10 is refused for credit and 9 is charged; in one batch the same.
        try await pairAndCredit(1)
        let large = try uplink(fCnt: 10, payload: [UInt8](repeating: 1, count: 30), at: clock.nanoseconds)
        let small = try uplink(fCnt: 9, payload: [UInt8](repeating: 2, count: 5), at: clock.nanoseconds)
        let outcomes = try await meter().meter(batch: [large, small])
        #expect(outcomes == [.refused(.noCredit), .forwarded(seq: 1, credits: 1, balance: 0, owner: "alice")])
        #expect(try await store.pairing(devAddr: sensor.rawValue)?.lastFCnt == 9)
    }

    /// A batch's outbox rows keep the frames' order: a charged uplink, an unpaired sensor's
    /// uplink, a refusal decided before the transaction and another charged uplink, as they
    /// came. (A refusal only the transaction can decide, for credit, is reported after it.)
    @Test func aBatchsRowsKeepTheOrderTheFramesCame() async throws {
        try await pairAndCredit(100)
        let other = DevAddr(0x2601_0042)
        let batch = [
            try uplink(fCnt: 1, payload: [1], at: clock.nanoseconds),
            try uplink(fCnt: 1, payload: [2], devAddr: other, at: clock.nanoseconds),
            try uplink(fCnt: 2, payload: [3], key: [UInt8](repeating: 0x99, count: 16), at: clock.nanoseconds),
        ]
        // The same sensor twice in a batch cuts it in two transactions: a second sensor paired
        // to alice keeps it one.
        let third = DevAddr(0x2601_0043)
        _ = try await store.pair(
            Pairing(devAddr: third.rawValue, owner: "alice", nwkSKey: nwkSKey, pairedAt: 1),
            nonce: secureRandomBytes(16),
            expiresAt: .max)
        let last = try uplink(fCnt: 1, payload: [4], devAddr: third, at: clock.nanoseconds)
        let outcomes = try await meter(MeterSettings(forwardUnpaired: true)).meter(batch: batch + [last])
        #expect(
            outcomes.map { if case .forwarded = $0 { "charged" } else { "\($0)" } } == [
                "charged", "forwardedUnpaired", "refused(Credits.UplinkRefusal.badMIC)", "charged",
            ])
        let kinds = try await store.outbox().map(\.kind)
        #expect(kinds == [.uplink, .uncharged, .rejected, .uplink])
    }

    @Test func anOwnerWithoutCreditIsRefused() async throws {
        try await pairAndCredit(0)
        #expect(try await meter().meter(uplink(fCnt: 1)) == .refused(.noCredit))
        #expect(try await uplinksInOutbox().isEmpty)
        #expect(try await store.outbox().contains { $0.kind == .rejected && $0.topic == topics.rejected })
        #expect(
            try await store.pairing(devAddr: sensor.rawValue)?.lastFCnt == nil,
            "the refused frame's counter is not remembered")
    }

    @Test func unpairedUplinksAreDroppedUnlessForwardingIsOn() async throws {
        #expect(try await meter().meter(uplink(fCnt: 1)) == .dropped(.unpaired))
        #expect(await store.outboxDepth() == 0)
        #expect(try await meter(MeterSettings(forwardUnpaired: true)).meter(uplink(fCnt: 1)) == .forwardedUnpaired)
        #expect(try await uplinksInOutbox().first?.rxInfo.metadata["dc"] == "0")
    }

    @Test func theSameFrameTwiceIsChargedOnce() async throws {
        try await pairAndCredit(10)
        let meter = meter()
        let frame = try uplink(fCnt: 1, at: clock.nanoseconds)
        #expect(try await meter.meter(frame) == .forwarded(seq: 1, credits: 1, balance: 9, owner: "alice"))
        var second = frame
        second.frequencyHz = 868_300_000
        second.receivedAt = clock.nanoseconds + 200_000_000
        #expect(try await meter.meter(second) == .duplicate)
        #expect(try await store.account(owner: "alice")?.balance == 9)
    }

    @Test func withoutASessionKeyNeitherMICNorCounterIsChecked() async throws {
        try await pairAndCredit(5, key: nil)
        let meter = meter()
        #expect(
            try await meter.meter(uplink(fCnt: 9, key: [UInt8](repeating: 3, count: 16), at: 1))
                == .forwarded(seq: 1, credits: 1, balance: 4, owner: "alice"))
    }

    /// A join request cannot be checked here: it is forwarded uncharged, whatever its DevNonce,
    /// and charged once when the network answers it through this hotspot.
    @Test func joinRequestsAreChargedOnlyWhenAnswered() async throws {
        try await pairAndCredit(5, devEUI: 0x0102_0304_0506_0708)
        var join = try uplink(fCnt: 0)
        join.payload = Hex.decode("00080706050403020108070605040302010201e6e10c55")!
        let meter = meter()
        #expect(try await meter.meter(join) == .forwardedJoin(owner: "alice"))
        var sameNonce = join
        sameNonce.payload = Hex.decode("00080706050403020108070605040302010201e6e10c56")!
        #expect(
            try await meter.meter(sameNonce) == .forwardedJoin(owner: "alice"),
            "the same DevNonce again is the network server's to judge")
        #expect(try await store.account(owner: "alice")?.balance == 5, "not charged yet")
        let context = UplinkMessages.context(of: join)
        #expect(
            try await meter.chargeAnsweredJoin(context: context)
                == .charged(owner: "alice", credits: 1, seq: 1, balance: 4))
        #expect(try await meter.chargeAnsweredJoin(context: context) == .noSuchJoin, "once per join request")
        #expect(try await meter.chargeAnsweredJoin(context: [1, 2, 3, 4]) == .noSuchJoin)
        let forwarded = try await store.outbox().filter { $0.kind == .uncharged }.map {
            try Gw_UplinkFrame(serializedBytes: $0.payload)
        }
        #expect(forwarded.count == 2)
        #expect(
            forwarded.allSatisfy {
                $0.rxInfo.metadata["dc"] == "0" && $0.rxInfo.metadata["owner"] == "alice"
                    && $0.rxInfo.metadata["join_dc"] == "1"
            })

        // Another join answered within the minute (command/down is not signed): not charged.
        var next = join
        next.payload = Hex.decode("00080706050403020108070605040302010203e6e10c55")!
        #expect(try await meter.meter(next) == .forwardedJoin(owner: "alice"))
        if case .notCharged(_, let reason) = try await meter.chargeAnsweredJoin(
            context: UplinkMessages.context(of: next))
        {
            #expect(reason.contains("less than a minute"))
        } else {
            Issue.record("a second join was charged within the minute")
        }

        let free = self.meter(MeterSettings(chargeJoins: false))
        join.timestamp &+= 1
        #expect(try await free.meter(join) == .forwardedJoin(owner: "alice"))
        #expect(
            try await free.chargeAnsweredJoin(context: UplinkMessages.context(of: join))
                == .notCharged(owner: "alice", reason: "charge_joins is false"))
        #expect(try await store.account(owner: "alice")?.balance == 4)
    }

    @Test func beaconsNoiseAndCRCErrorsAreNotCharged() async throws {
        try await pairAndCredit(5)
        var beacon = try uplink(fCnt: 1)
        beacon.payload = [0xE0] + [UInt8](repeating: 0x5A, count: 51)
        #expect(try await meter().meter(beacon) == .beacon)
        var bad = try uplink(fCnt: 1)
        bad.crc = .bad
        #expect(try await meter().meter(bad) == .dropped(.crcError))
        var noise = try uplink(fCnt: 1)
        noise.payload = [0x40, 1, 2]
        #expect(try await meter().meter(noise) == .dropped(.undecodable))
        var downlink = try uplink(fCnt: 1)
        downlink.payload[0] = 0x60
        #expect(try await meter().meter(downlink) == .dropped(.downlink))
        #expect(try await store.account(owner: "alice")?.balance == 5)
    }

    /// The debit and the outbox row are one transaction: a failure between them leaves neither,
    /// and a charge that committed survives a restart exactly once.
    @Test func noCreditIsLostAndNoneChargedTwiceAcrossAFailureAndARestart() async throws {
        try await pairAndCredit(10)
        // The uplink's outbox row fails (a trigger aborts it, as a full disk would).
        var db: OpaquePointer?
        #expect(sqlite3_open(store.path, &db) == SQLITE_OK)
        defer { sqlite3_close(db) }
        let trigger = """
            CREATE TRIGGER refuse BEFORE INSERT ON outbox WHEN NEW.kind = 'uplink'
            BEGIN SELECT RAISE(ABORT, 'the outbox cannot take it'); END;
            """
        #expect(sqlite3_exec(db, trigger, nil, nil, nil) == SQLITE_OK)
        await #expect(throws: StoreError.self) { try await meter().meter(uplink(fCnt: 1)) }
        #expect(try await store.account(owner: "alice")?.balance == 10, "nothing debited")
        #expect(await store.outboxDepth() == 0)
        #expect(try await store.pairing(devAddr: sensor.rawValue)?.lastFCnt == nil)
        #expect(try await store.charges(owner: "alice").isEmpty)

        #expect(sqlite3_exec(db, "DROP TRIGGER refuse", nil, nil, nil) == SQLITE_OK)
        #expect(
            try await meter().meter(uplink(fCnt: 1)) == .forwarded(seq: 1, credits: 1, balance: 9, owner: "alice"),
            "the retry is charged once, with the sequence number the rolled-back charge never took")
        let path = store.path
        let reopened = try Store(path: path)
        #expect(try await reopened.account(owner: "alice")?.balance == 9)
        #expect(
            try await reopened.outbox().filter { $0.kind == .uplink }.count == 1,
            "the unpublished uplink is still there to publish")
        #expect(try await reopened.charges(owner: "alice").count == 1)
    }

    /// Another charge lands between the meter's reading of the ledger and its transaction (it
    /// is made here through a second connection, while the meter plans): the store refuses the
    /// plan, and the meter reads the ledger again and charges with the next number and the
    /// balance that is really left.
    @Test func aChargeMadeWhileTheBatchIsPlannedMakesTheMeterPlanAgain() async throws {
        try await pairAndCredit(10)
        let path = store.path
        let chargedElsewhere = Mutex(false)
        let log = CapturedLog()
        let meter = Meter(
            store: store, topics: topics, logger: log.logger,
            now: {
                let first = chargedElsewhere.withLock { done in
                    defer { done = true }
                    return !done
                }
                if first {
                    var db: OpaquePointer?
                    sqlite3_open(path, &db)
                    sqlite3_exec(
                        db,
                        """
                        INSERT INTO charges (owner, size, credits, payload_hash, chain, received_at)
                            VALUES ('alice', 12, 3, x'', x'', 1);
                        UPDATE accounts SET balance = balance - 3 WHERE owner = 'alice';
                        """, nil, nil, nil)
                    sqlite3_close(db)
                }
                return 5
            }, arrivalClock: { 5 })
        #expect(try await meter.meter(uplink(fCnt: 1)) == .forwarded(seq: 2, credits: 1, balance: 6, owner: "alice"))
        #expect(chargedElsewhere.withLock { $0 })
        #expect(log.all.contains { $0.message.contains("planning again") })
        let forwarded = try #require(try await uplinksInOutbox().first)
        #expect(forwarded.rxInfo.metadata == ["dc": "1", "balance": "6", "owner": "alice", "seq": "2"])
        #expect(try await store.account(owner: "alice")?.balance == 6)
    }

    /// Charges are planned against the ledger the store last gave, and the store checks the
    /// plan: top-ups that land between the two make the meter plan again, so every charge gets
    /// the next sequence number, the balance it reports is the one it left, and no credit is
    /// lost or counted twice.
    @Test func topUpsWhileUplinksAreMeteredAreNeitherLostNorCountedTwice() async throws {
        try await pairAndCredit(100)
        let store = self.store
        let meter = meter()
        async let topUps: Void = {
            for _ in 0..<200 {
                _ = try await store.credit(
                    owner: "alice", amount: 1, nonce: secureRandomBytes(16), expiresAt: .max, at: 2)
            }
        }()
        var outcomes: [MeterOutcome] = []
        for fCnt in 1...200 {
            outcomes.append(try await meter.meter(uplink(fCnt: UInt32(fCnt))))
        }
        try await topUps
        let seqs = outcomes.compactMap { if case .forwarded(let seq, _, _, _) = $0 { seq } else { nil } }
        #expect(seqs == Array(1...200), "every uplink charged, in order, with no number skipped")
        #expect(try await store.account(owner: "alice")?.balance == 100)
        let charges = try await store.charges(owner: "alice")
        #expect(charges.map(\.seq) == seqs)
        var chain = [UInt8](repeating: 0, count: 32)
        for charge in charges {
            chain = Store.nextChain(
                previous: chain, seq: charge.seq, credits: charge.credits, payloadHash: charge.payloadHash)
        }
        #expect(try await store.account(owner: "alice")?.chain == chain)
        // Each forwarded uplink says the balance its charge left: never more than one credit
        // below the one before it (top-ups only add).
        let balances = try await store.outbox(limit: 1000).map {
            Int64(try Gw_UplinkFrame(serializedBytes: $0.payload).rxInfo.metadata["balance"] ?? "") ?? -1
        }
        #expect(balances.count == 200)
        #expect(zip(balances, balances.dropFirst()).allSatisfy { $1 >= $0 - 1 })
    }
}

@Suite(.capturingLogs) struct ReceiptTests {
    /// A store where alice's sensor is paired and she has 10 credits, and a meter on it.
    static func aliceWithCredit() async throws -> (Store, Meter) {
        let store = try temporaryStore()
        _ = try await store.pair(
            Pairing(devAddr: sensor.rawValue, owner: "alice", pairedAt: 1), nonce: [1, 2, 3, 4, 5, 6, 7, 8],
            expiresAt: .max)
        _ = try await store.credit(owner: "alice", amount: 10, nonce: [2, 2, 3, 4, 5, 6, 7, 8], expiresAt: .max, at: 1)
        let clock = TestClock()
        return (store, Meter(store: store, topics: topics) { clock.nanoseconds })
    }

    @Test func receiptsAreSignedAndVerifiable() async throws {
        let gatewayKey = Ed25519PrivateKey.generate()
        let (store, meter) = try await Self.aliceWithCredit()
        _ = try await meter.meter(uplink(fCnt: 1, at: 10))
        _ = try await meter.meter(uplink(fCnt: 2, payload: [UInt8](repeating: 1, count: 30), at: 20))
        let summaries = try await ReceiptIssuer(store: store, signer: gatewayKey, topics: topics).issue(at: 100)
        #expect(summaries.count == 1)
        let message = try #require(try await store.outbox().first { $0.kind == .receipt })
        #expect(message.topic == topics.receipt)
        let receipt = try Hotspotd_UsageReceipt(serializedBytes: message.payload)
        #expect(SignedReports.verify(receipt) == gatewayKey.heliumKey)
        #expect(
            receipt.owner == "alice" && receipt.uplinks == 2 && receipt.credits == 3 && receipt.firstSeq == 1
                && receipt.lastSeq == 2)
        var tampered = receipt
        tampered.credits = 1
        #expect(SignedReports.verify(tampered) == nil)
    }

    /// A secure element that stops answering signs no receipt: the period waits, whole, and the
    /// receipt that comes once it answers again sums every charge; signed by the P-256 key.
    @Test func aSignerThatFailsLeavesThePeriodForLater() async throws {
        let (store, meter) = try await Self.aliceWithCredit()
        _ = try await meter.meter(uplink(fCnt: 1, at: 10))
        let signer = FlakySigner(try SoftwareECCSigner(P256PrivateKey.compact(seed: [5])))
        let issuer = ReceiptIssuer(store: store, signer: signer, topics: topics)
        signer.failing.store(true, ordering: .relaxed)
        await #expect(throws: StoreError.self) { try await issuer.issue(at: 100) }
        #expect(try await store.outbox().allSatisfy { $0.kind != .receipt })
        _ = try await meter.meter(uplink(fCnt: 2, at: 110))
        signer.failing.store(false, ordering: .relaxed)
        let summaries = try await issuer.issue(at: 200)
        #expect(summaries.count == 1 && summaries[0].uplinks == 2 && summaries[0].firstSeq == 1)
        let message = try #require(try await store.outbox().first { $0.kind == .receipt })
        let receipt = try Hotspotd_UsageReceipt(serializedBytes: message.payload)
        #expect(SignedReports.verify(receipt) == signer.heliumKey)
        #expect(receipt.pubKey.first == 0x00, "ecc_compact")
    }
}

/// A signer that fails while `failing` is set, as a secure element that stopped answering.
final class FlakySigner: GatewaySigner {
    let inner: SoftwareECCSigner
    let failing = Atomic(false)
    init(_ inner: SoftwareECCSigner) { self.inner = inner }
    var heliumKey: HeliumPublicKey { inner.heliumKey }
    func sign(_ message: [UInt8]) throws(CryptoError) -> [UInt8] {
        if failing.load(ordering: .relaxed) { throw CryptoError("the secure element does not answer") }
        return try inner.sign(message)
    }
}
