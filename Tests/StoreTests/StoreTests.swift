import CSQLite
import Clocks
import Cryptography
import TestSupport
import Testing

@testable import Store

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh directory under /tmp for one test's database.
func temporaryDirectory() -> String {
    var template = Array("/tmp/hotspotd-store-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
}

func uplinkMessage(_ seq: Int64, _ balance: Int64) -> [NewMessage] {
    [
        NewMessage(
            kind: .uplink, topic: "eu868/gateway/x/event/up", messageID: "up-\(seq)",
            payload: Array("seq \(seq) balance \(balance)".utf8))
    ]
}

/// Charges one uplink as the meter does: planned against the ledger as it stands, with its
/// uplink message.
@discardableResult
func charge(
    _ store: Store, owner: String, devAddr: UInt32?, payload: [UInt8], credits: Int64, fCnt: UInt32?,
    at time: Int64
) async throws -> (seq: Int64, balance: Int64) {
    let ledger = try await store.ledger(owners: [owner], devAddrs: [])
    let balance = ledger.balances[owner] ?? 0
    try await store.record(
        [
            .charge(
                Charge(
                    owner: owner, devAddr: devAddr, devEUI: nil, phyPayload: payload, credits: credits, fCnt: fCnt,
                    receivedAt: time, seq: ledger.nextSeq, balanceBefore: balance,
                    messages: uplinkMessage(ledger.nextSeq, balance - credits)))
        ], at: time)
    return (ledger.nextSeq, balance - credits)
}

@Suite(.capturingLogs) struct StoreTests {
    let directory = temporaryDirectory()

    @Test func createsAMigratedDatabaseInWALMode() async throws {
        let store = try Store.open(directory: directory)
        #expect(try await store.userVersion() == Int64(Store.schemaVersion))
        #expect(try await store.journalMode() == "wal")
        #expect(try await store.synchronousSetting() == 2, "a commit is on stable storage before it is published")
    }

    @Test func theDatabaseIsItsOwnersAlone() async throws {
        func mode(_ path: String) -> mode_t {
            var status = stat()
            return stat(path, &status) == 0 ? status.st_mode & 0o777 : 0
        }
        let data = directory + "/data"
        let store = try Store.open(directory: data)
        _ = try await store.credit(owner: "alice", amount: 1, nonce: [9], expiresAt: 100, at: 1)
        #expect(mode(data) == 0o700)
        #expect(mode(data + "/hotspotd.db") == 0o600)
        #expect(mode(data + "/hotspotd.db-wal") == 0o600, "SQLite gives the WAL the database's mode")

        // A store made readable by others (an older hotspotd, a careless chmod) is narrowed.
        let other = temporaryDirectory()
        _ = try Store.open(directory: other)
        chmod(other + "/hotspotd.db", 0o644)
        _ = try Store.open(directory: other)
        #expect(mode(other + "/hotspotd.db") == 0o600)
    }

    @Test func pairCreditAndChargeInOneTransactionWithTheOutbox() async throws {
        let store = try Store.open(directory: directory)
        #expect(
            try await store.pair(
                Pairing(devAddr: 0x2601_1BDA, owner: "alice", nwkSKey: [UInt8](repeating: 1, count: 16), pairedAt: 1),
                nonce: [1], expiresAt: 100) == .applied)
        #expect(try await store.credit(owner: "alice", amount: 3, nonce: [2], expiresAt: 100, at: 2) == .applied)
        #expect(
            try await store.lookUp(devAddrs: [0x2601_1BDA, 5], devEUIs: []).ledger
                == Ledger(nextSeq: 1, balances: ["alice": 3]))
        let charge = Charge(
            owner: "alice", devAddr: 0x2601_1BDA, devEUI: nil, phyPayload: [0x40, 1, 2], credits: 2, fCnt: 7,
            receivedAt: 3, seq: 1, balanceBefore: 3, messages: uplinkMessage(1, 1))
        try await store.record([.charge(charge)], at: 3)
        #expect(try await store.account(owner: "alice")?.balance == 1)
        #expect(try await store.pairing(devAddr: 0x2601_1BDA)?.lastFCnt == 7)
        #expect(
            try await store.ledger(owners: ["alice", "nobody"], devAddrs: [0x2601_1BDA])
                == Ledger(nextSeq: 2, balances: ["alice": 1], frameCounters: [0x2601_1BDA: 7]))
        let outbox = try await store.outbox()
        #expect(outbox.map(\.messageID) == ["up-1"])
        #expect(outbox.first?.payload == Array("seq 1 balance 1".utf8))

        // A plan the store can no longer honour is refused whole, and nothing changes.
        var again = charge
        again.seq = 2
        again.fCnt = 8
        await #expect(throws: StoreError(.outdated, "alice has 1 DC, below the 3 charge 2 counted on")) {
            try await store.record([.message(uplinkMessage(9, 9)[0]), .charge(again)], at: 4)
        }
        again.balanceBefore = 1
        await #expect(throws: StoreError(.constraint, "charge 2: 2 DC needed, 1 DC planned")) {
            try await store.record([.charge(again)], at: 4)
        }
        again.credits = 1
        again.seq = 3
        await #expect(throws: StoreError(.outdated, "the next charge is 2, not 3")) {
            try await store.record([.charge(again)], at: 4)
        }
        #expect(try await store.account(owner: "alice")?.balance == 1)
        #expect(try await store.pairing(devAddr: 0x2601_1BDA)?.lastFCnt == 7)
        #expect(try await store.outbox().map(\.messageID) == ["up-1"])
        #expect(try await store.charges(owner: "alice").map(\.seq) == [1])
    }

    /// A top-up between the plan and the transaction leaves the plan good: the charge comes
    /// first, its message says the balance it left, and the top-up is all there after it.
    @Test func aTopUpSinceThePlanCountsAsComingAfterTheCharge() async throws {
        let store = try Store.open(directory: directory)
        _ = try await store.credit(owner: "bob", amount: 5, nonce: [1], expiresAt: 100, at: 1)
        let ledger = try await store.ledger(owners: ["bob"], devAddrs: [])
        _ = try await store.credit(owner: "bob", amount: 10, nonce: [2], expiresAt: 100, at: 2)
        try await store.record(
            [
                .charge(
                    Charge(
                        owner: "bob", devAddr: 3, devEUI: nil, phyPayload: [0x40, 3], credits: 2, fCnt: nil,
                        receivedAt: 3, seq: ledger.nextSeq, balanceBefore: 5, messages: uplinkMessage(1, 3)))
            ], at: 3)
        #expect(try await store.account(owner: "bob")?.balance == 13)
        #expect(try await store.outbox().first?.payload == Array("seq 1 balance 3".utf8))
    }

    @Test func theFrameCounterNeverMovesBackwardsInsideTheTransaction() async throws {
        let store = try Store.open(directory: directory)
        _ = try await store.pair(
            Pairing(devAddr: 7, owner: "zoe", nwkSKey: [UInt8](repeating: 1, count: 16), pairedAt: 1), nonce: [1],
            expiresAt: 100)
        _ = try await store.credit(owner: "zoe", amount: 10, nonce: [2], expiresAt: 100, at: 1)
        #expect(
            try await charge(store, owner: "zoe", devAddr: 7, payload: [0x40, 12], credits: 1, fCnt: 12, at: 2) == (
                1, 9
            ))
        await #expect(throws: StoreError(.outdated, "charge 2: FCnt 11 was overtaken by another frame")) {
            try await charge(store, owner: "zoe", devAddr: 7, payload: [0x40, 11], credits: 1, fCnt: 11, at: 2)
        }
        #expect(try await store.pairing(devAddr: 7)?.lastFCnt == 12)
        #expect(try await store.account(owner: "zoe")?.balance == 9)
    }

    @Test func textWithANulIsStoredWhole() async throws {
        let store = try Store.open(directory: directory)
        _ = try await store.credit(owner: "alice\u{0}x", amount: 5, nonce: [4], expiresAt: 100, at: 1)
        #expect(try await store.account(owner: "alice") == nil)
        #expect(try await store.account(owner: "alice\u{0}x")?.balance == 5)
    }

    @Test func aNonceIsAppliedOnce() async throws {
        let store = try Store.open(directory: directory)
        #expect(try await store.credit(owner: "bob", amount: 10, nonce: [9, 9], expiresAt: 100, at: 1) == .applied)
        #expect(try await store.credit(owner: "bob", amount: 10, nonce: [9, 9], expiresAt: 100, at: 2) == .replayed)
        #expect(try await store.account(owner: "bob")?.balance == 10)
        #expect(try await store.unpair(devAddr: 5, nonce: [3], expiresAt: 100, at: 3) == .notPaired)
    }

    @Test func theChainCanBeRecomputedFromTheChargedUplinks() async throws {
        let store = try Store.open(directory: directory)
        _ = try await store.credit(owner: "carol", amount: 100, nonce: [1], expiresAt: 100, at: 1)
        let frames: [[UInt8]] = [[0x40, 1], [0x40, 2, 2], [0x40, 3, 3, 3]]
        for (index, frame) in frames.enumerated() {
            try await charge(
                store, owner: "carol", devAddr: 1, payload: frame, credits: 1, fCnt: UInt32(index), at: 10)
        }
        var chain = [UInt8](repeating: 0, count: 32)
        for (seq, frame) in zip(1..., frames) {
            chain = Store.nextChain(previous: chain, seq: Int64(seq), credits: 1, payloadHash: SHA256.hash(frame))
        }
        #expect(try await store.account(owner: "carol")?.chain == chain)
    }

    @Test func receiptsSummariseEachOwnersPeriodOnce() async throws {
        let store = try Store.open(directory: directory)
        _ = try await store.credit(owner: "dave", amount: 100, nonce: [1], expiresAt: 100, at: 1)
        _ = try await store.credit(owner: "erin", amount: 100, nonce: [2], expiresAt: 100, at: 1)
        for size in [12, 30] {
            try await charge(
                store, owner: "dave", devAddr: 1, payload: [UInt8](repeating: 0x40, count: size), credits: 1, fCnt: nil,
                at: 5)
        }
        let summaries = try await store.issueReceipts(at: 60) { summary in
            [
                NewMessage(
                    kind: .receipt, topic: "receipt", messageID: "receipt-\(summary.owner)-\(summary.lastSeq)",
                    payload: [])
            ]
        }
        #expect(summaries.count == 1, "erin has no charges")
        let receipt = try #require(summaries.first)
        #expect(receipt.owner == "dave" && receipt.uplinks == 2 && receipt.bytes == 42 && receipt.credits == 2)
        #expect(receipt.firstSeq == 1 && receipt.lastSeq == 2)
        #expect(receipt.previousChain == [UInt8](repeating: 0, count: 32))
        #expect(try await receipt.chain == store.account(owner: "dave")?.chain)
        #expect(try await store.issueReceipts(at: 120) { _ in [] }.isEmpty, "nothing new to receipt")
        #expect(try await store.outbox().contains { $0.kind == .receipt })

        // The next period starts where the last receipt ended, and its chain goes on from it.
        try await charge(
            store, owner: "dave", devAddr: 1, payload: [UInt8](repeating: 0x40, count: 20), credits: 1, fCnt: nil,
            at: 130)
        let next = try #require(try await store.issueReceipts(at: 180) { _ in [] }.first)
        #expect(next.uplinks == 1 && next.bytes == 20 && next.credits == 1 && next.firstSeq == 3 && next.lastSeq == 3)
        #expect(next.periodStart == 60 && next.previousChain == receipt.chain)
        #expect(try await next.chain == store.account(owner: "dave")?.chain)
    }

    /// Receipts are signed between reading the periods and recording them: a charge that comes
    /// in between leaves that owner's receipt for the next round, which then sums it all.
    @Test func aChargeWhileReceiptsAreSignedLeavesThatReceiptForTheNextRound() async throws {
        let store = try Store.open(directory: directory)
        _ = try await store.credit(owner: "dave", amount: 100, nonce: [1], expiresAt: 100, at: 1)
        _ = try await store.credit(owner: "erin", amount: 100, nonce: [2], expiresAt: 100, at: 1)
        for owner in ["dave", "erin"] {
            try await charge(
                store, owner: owner, devAddr: owner == "dave" ? 1 : 2, payload: [UInt8](repeating: 0x40, count: 12),
                credits: 1, fCnt: nil, at: 5)
        }
        let summaries = try await store.receiptSummaries(at: 60)
        #expect(summaries.map(\.owner) == ["dave", "erin"])
        try await charge(
            store, owner: "dave", devAddr: 1, payload: [UInt8](repeating: 0x41, count: 12), credits: 1, fCnt: nil,
            at: 61)
        let recorded = try await store.recordReceipts(summaries.map { ($0, []) }, at: 62)
        #expect(recorded.map(\.owner) == ["erin"], "dave's period grew while it was being signed")
        let next = try await store.issueReceipts(at: 120) { _ in [] }
        #expect(next.map(\.owner) == ["dave"])
        #expect(next.first?.uplinks == 2 && next.first?.firstSeq == 1 && next.first?.lastSeq == 3)
        #expect(
            try await store.recordReceipts(summaries.map { ($0, []) }, at: 130).isEmpty, "a stale plan records nothing")
    }

    /// A store of schema version 2 had no running totals: the migration computes them from the
    /// charges not yet in a receipt, so the first receipt after it covers exactly those.
    @Test func theMigrationToRunningTotalsCarriesThePeriodOver() async throws {
        let path = directory + "/hotspotd.db"
        do {
            let store = try Store(path: path)
            _ = try await store.credit(owner: "dave", amount: 100, nonce: [1], expiresAt: 100, at: 1)
            try await charge(
                store, owner: "dave", devAddr: 1, payload: [UInt8](repeating: 0x40, count: 12), credits: 1,
                fCnt: nil, at: 5)
            _ = try await store.issueReceipts(at: 10) { _ in [] }
            for size in [30, 50] {
                try await charge(
                    store, owner: "dave", devAddr: 1, payload: [UInt8](repeating: 0x40, count: size), credits: 2,
                    fCnt: nil, at: 15)
            }
        }
        // Back to version 2: the columns gone, as a store written before them.
        var db: OpaquePointer?
        #expect(sqlite3_open(path, &db) == SQLITE_OK)
        for column in [
            "period_uplinks", "period_bytes", "period_credits", "period_first_seq", "period_last_seq",
            "period_first_at",
        ] {
            #expect(sqlite3_exec(db, "ALTER TABLE accounts DROP COLUMN \(column)", nil, nil, nil) == SQLITE_OK)
        }
        #expect(sqlite3_exec(db, "PRAGMA user_version = 2", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(db)

        let store = try Store(path: path)
        #expect(try await store.userVersion() == Int64(Store.schemaVersion))
        let receipt = try #require(try await store.issueReceipts(at: 20) { _ in [] }.first)
        #expect(
            receipt.uplinks == 2 && receipt.bytes == 80 && receipt.credits == 4 && receipt.firstSeq == 2
                && receipt.lastSeq == 3)
        #expect(receipt.periodStart == 10)
    }

    @Test func outboxAcknowledgementDeletes() async throws {
        let store = try Store.open(directory: directory)
        try await store.enqueue(
            [
                NewMessage(kind: .beacon, topic: "t", messageID: "a", payload: [1]),
                NewMessage(kind: .other, topic: "t", messageID: "b", payload: [2]),
            ], at: 1)
        let pending = try await store.outbox()
        #expect(pending.count == 2)
        try await store.acknowledge([pending[0].id])
        #expect(try await store.outbox().map(\.messageID) == ["b"])
        #expect(await store.outboxDepth() == 1)
    }

    @Test func aCorruptFileIsReportedAndLeftAlone() throws {
        let path = directory + "/hotspotd.db"
        let garbage =
            Array("this is not a database, it is a shopping list".utf8) + [UInt8](repeating: 0x55, count: 4096)
        let file = fopen(path, "w")
        fwrite(garbage, 1, garbage.count, file)
        fclose(file)
        do {
            _ = try Store.open(directory: directory)
            Issue.record("opened a file that is not a database")
        } catch {
            #expect(error.kind == .corrupt)
            #expect(error.message.contains(path))
        }
        var bytes = [UInt8](repeating: 0, count: garbage.count)
        let reader = fopen(path, "r")
        let count = fread(&bytes, 1, bytes.count, reader)
        fclose(reader)
        #expect(count == garbage.count && bytes == garbage, "the file is not overwritten")
    }

    @Test func aDatabaseFromANewerVersionIsRefused() async throws {
        do {
            let store = try Store.open(directory: directory)
            _ = try await store.userVersion()
        }
        let path = directory + "/hotspotd.db"
        try bumpUserVersion(path: path, to: 99)
        do {
            _ = try Store(path: path)
            Issue.record("opened a newer schema")
        } catch {
            #expect(error.kind == .tooNew)
            #expect(error.message.contains("99"))
        }
    }

    @Test func aReaderNeitherCreatesNorMigratesNorWrites() async throws {
        let path = directory + "/hotspotd.db"
        #expect(throws: StoreError.self, "no database is created") { try Store(readingFrom: path) }
        #expect(access(path, F_OK) != 0)

        try createVersionZero(path: path)
        #expect(throws: StoreError.self, "an older schema is not migrated") { try Store(readingFrom: path) }
        unlink(path)

        do {
            let writer = try Store(path: path)
            _ = try await writer.pair(
                Pairing(devAddr: 0x2601_1BDA, owner: "alice", pairedAt: 1), nonce: [1], expiresAt: 100)
        }
        let reader = try Store(readingFrom: path)
        #expect(try await reader.pairings().map(\.owner) == ["alice"])
        await #expect(throws: StoreError.self, "the reader cannot write") {
            _ = try await reader.pair(
                Pairing(devAddr: 0x2601_1BDB, owner: "bob", pairedAt: 2), nonce: [2], expiresAt: 100)
        }
        try bumpUserVersion(path: path, to: 99)
        do {
            _ = try Store(readingFrom: path)
            Issue.record("read a newer schema")
        } catch {
            #expect(error.kind == .tooNew)
        }
    }

    @Test func anOlderSchemaIsMigratedOnOpen() async throws {
        let path = directory + "/hotspotd.db"
        try createVersionZero(path: path)
        let store = try Store(path: path)
        #expect(try await store.userVersion() == Int64(Store.schemaVersion))
        #expect(try await store.accounts().isEmpty)
    }
}

@Suite(.capturingLogs) struct AcknowledgementTests {
    @Test func acknowledgedIdsGoAndOnlyThey() async throws {
        let store = try Store.open(directory: temporaryDirectory())
        try await store.enqueue(
            (1...10).map { NewMessage(kind: .uplink, topic: "u", messageID: "up-\($0)", payload: []) }, at: 1)
        let ids = try await store.outbox(limit: 100).map(\.id)
        // Out of order, with a repeat and gaps: the runs 1–3 and 5–6, and 9.
        try await store.acknowledge([ids[2], ids[0], ids[1], ids[5], ids[4], ids[8], ids[0]])
        #expect(try await store.outbox(limit: 100).map(\.messageID) == ["up-4", "up-7", "up-8", "up-10"])
        #expect(await store.outboxDepth() == 4)
    }
}

@Suite(.capturingLogs) struct OutboxCapTests {
    @Test func atTheCapTheOldestUplinksGoAndReportsStay() async throws {
        let store = try Store.open(directory: temporaryDirectory(), outboxLimit: 10)
        try await store.enqueue([NewMessage(kind: .receipt, topic: "r", messageID: "receipt-1", payload: [])], at: 1)
        try await store.enqueue(
            (0..<12).map { NewMessage(kind: .uplink, topic: "u", messageID: "up-\($0)", payload: []) }, at: 2)
        try await store.enqueue([NewMessage(kind: .witness, topic: "w", messageID: "witness-1", payload: [])], at: 3)
        // The cap counts uplinks: the receipt and the witness take no uplink's place.
        #expect(await store.outboxDepth() == 12)
        #expect(await store.droppedAtCap == 2)
        let ids = try await store.outbox(limit: 100).map(\.messageID)
        #expect(ids.first == "receipt-1" && ids.last == "witness-1", "signed reports are not dropped for uplinks")
        #expect(ids.filter { $0.hasPrefix("up-") } == (2..<12).map { "up-\($0)" }, "the oldest uplinks went")
        let reopened = try Store(path: store.path, outboxLimit: 10)
        #expect(await reopened.outboxDepth() == 12, "the depth is counted again on open")
    }

    /// Rejections (and every other kind) come from outside at rates others choose: each kind
    /// keeps at most its limit, its oldest going first, and none of them pushes out an uplink.
    @Test func everyKindHasACapOfItsOwnAndNoneEvictsAnUplink() async throws {
        let store = try Store.open(directory: temporaryDirectory(), outboxLimit: 10)
        try await store.enqueue(
            (0..<5).map { NewMessage(kind: .uplink, topic: "u", messageID: "up-\($0)", payload: []) }, at: 1)
        let limit = try #require(OutboxMessage.Kind.rejected.limit)
        for batch in 0..<3 {
            try await store.enqueue(
                (0..<limit).map {
                    NewMessage(kind: .rejected, topic: "r", messageID: "rejected-\(batch)-\($0)", payload: [])
                }, at: 2)
        }
        let messages = try await store.outbox(limit: 100_000)
        #expect(messages.filter { $0.kind == .uplink }.count == 5, "no uplink was pushed out")
        #expect(messages.filter { $0.kind == .rejected }.count == limit)
        #expect(messages.first { $0.kind == .rejected }?.messageID == "rejected-2-0", "the newest rejections stay")
        #expect(await store.droppedAtKindCap[.rejected] == 2 * limit)
        #expect(await store.outboxDepth() == 5 + limit)
        for kind in OutboxMessage.Kind.allCases where kind != .uplink {
            #expect(kind.limit != nil, "\(kind) has a cap")
        }
    }
}
