import ChirpStack
import Clocks
import Cryptography
import HAL
import Messages
import Store
import Synchronization
import TestSupport
import Testing
import Wire

@testable import Credits

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.capturingLogs) struct CommandTests {
    let clock = TestClock()
    let store: Store
    let processor: CommandProcessor

    init() throws {
        store = try temporaryStore()
        let clock = self.clock
        processor = CommandProcessor(
            store: store,
            authority: CommandAuthority(
                authority: authorityKey.publicKey, gatewayID: gatewayID, sealingKey: gatewayKey.sealingKey),
            topics: topics
        ) { clock.nanoseconds }
    }

    var future: UInt64 { clock.seconds + 300 }

    func rejections() async throws -> [Hotspotd_Rejection] {
        try await store.outbox().filter { $0.kind == .rejected }.map {
            try Hotspotd_Rejection(serializedBytes: $0.payload)
        }
    }

    @Test func aSignedPairAndCreditAreApplied() async throws {
        let pair = try signed(
            .pair(devAddr: sensor.rawValue, devEUI: 0x70B3_D57E_D000_0001, owner: "alice", nwkSKey: nwkSKey),
            expiresAt: future)
        #expect(
            try await processor.process(pair, topic: topics.pair)
                == .success(
                    .pair(devAddr: sensor.rawValue, devEUI: 0x70B3_D57E_D000_0001, owner: "alice", nwkSKey: nwkSKey)))
        #expect(
            try await processor.process(
                try signed(.credit(owner: "alice", amount: 500), expiresAt: future), topic: topics.credit)
                == .success(.credit(owner: "alice", amount: 500)))
        #expect(try await store.pairing(devAddr: sensor.rawValue)?.owner == "alice")
        #expect(try await store.pairing(devEUI: 0x70B3_D57E_D000_0001)?.devAddr == sensor.rawValue)
        #expect(try await store.account(owner: "alice")?.balance == 500)
        #expect(try await rejections().isEmpty)
    }

    /// A NwkSKey in the clear used to sit at a fixed offset of every pair command: whoever read
    /// `command/pair` could forge frames that pass its MIC. It is now sealed to the gateway's
    /// X25519 key; the clear form is refused, and a seal for another gateway cannot be opened.
    @Test func theNwkSKeyTravelsSealedToTheGateway() async throws {
        let command = Command.pair(devAddr: sensor.rawValue, devEUI: nil, owner: "alice", nwkSKey: nwkSKey)
        let sealed = try signed(command, expiresAt: future)
        #expect(!Hex.encode(sealed).contains(Hex.encode(nwkSKey)), "the key is nowhere in the bytes on the broker")
        #expect(try await processor.process(sealed, topic: topics.pair) == .success(command))
        #expect(try await store.pairing(devAddr: sensor.rawValue)?.nwkSKey == nwkSKey)

        let clear = try signed(command, expiresAt: future, sealedTo: nil)
        #expect(Hex.encode(clear).contains(Hex.encode(nwkSKey)))
        #expect(try await processor.process(clear, topic: topics.pair) == .failure(.unsealedKey))
        let other = Ed25519PrivateKey.generate().sealingKey.publicKey
        #expect(
            try await processor.process(try signed(command, expiresAt: future, sealedTo: other), topic: topics.pair)
                == .failure(.badSeal))
        #expect(try await rejections().map(\.reason) == ["unsealed_key", "bad_seal"])
        // Sealed for this gateway's key but another gateway ID: the ID is bound in too.
        let elsewhere = try SecretSeal.seal(nwkSKey, to: gatewayKey.sealingKey.publicKey, gatewayID: "0016c001ff10a236")
        #expect(throws: CryptoError.self) {
            try SecretSeal.open(elsewhere, with: gatewayKey.sealingKey, gatewayID: gatewayID)
        }
    }

    @Test func aBadSignatureIsRefused() async throws {
        var bytes = try signed(.credit(owner: "mallory", amount: 1_000_000), expiresAt: future)
        var command = try Hotspotd_SignedCommand(serializedBytes: bytes)
        var signature = Array(command.signature)
        signature[0] ^= 0xFF
        command.signature = .init(signature)
        bytes = try command.serializedBytes()
        #expect(try await processor.process(bytes, topic: topics.credit) == .failure(.badSignature))
        #expect(try await store.account(owner: "mallory") == nil)
        #expect(try await rejections().map(\.reason) == ["bad_signature"])
    }

    @Test func aCommandSignedByAnyoneElseIsRefused() async throws {
        let impostor = Ed25519PrivateKey.generate()
        let bytes = try signed(.credit(owner: "mallory", amount: 1_000_000), key: impostor, expiresAt: future)
        #expect(try await processor.process(bytes, topic: topics.credit) == .failure(.wrongSigner))
        #expect(try await store.account(owner: "mallory") == nil)
        #expect(try await rejections().first?.reason == "wrong_signer")
    }

    @Test func aCommandForAnotherGatewayIsRefused() async throws {
        let bytes = try signed(.credit(owner: "alice", amount: 5), gateway: "0016c001ff10a236", expiresAt: future)
        #expect(try await processor.process(bytes, topic: topics.credit) == .failure(.wrongGateway))
        #expect(try await rejections().first?.reason == "wrong_gateway")
    }

    @Test func anExpiredCommandIsRefused() async throws {
        let bytes = try signed(.credit(owner: "alice", amount: 5), expiresAt: clock.seconds - 1)
        #expect(try await processor.process(bytes, topic: topics.credit) == .failure(.expired))
        #expect(try await store.account(owner: "alice") == nil)
    }

    @Test func aReplayedNonceIsRefused() async throws {
        let bytes = try signed(.credit(owner: "alice", amount: 5), expiresAt: future)
        #expect(
            try await processor.process(bytes, topic: topics.credit) == .success(.credit(owner: "alice", amount: 5)))
        #expect(try await processor.process(bytes, topic: topics.credit) == .failure(.replayed))
        #expect(try await store.account(owner: "alice")?.balance == 5, "credited once")
        #expect(try await rejections().first?.reason == "replayed")
    }

    /// Nonces used to be pruned by the wall clock: pushed forward past a command's expiry (a
    /// spoofed NTP server on the LAN), it made the store forget them, and a captured credit
    /// was applied again once the clock was back. Pruning now follows the authority's own
    /// commands, never the clock (on a running agent: TrustBoundaryTests).
    @Test func aClockPushedForwardForgetsNoNonce() async throws {
        let captured = try signed(.credit(owner: "alice", amount: 5), expiresAt: future)
        #expect(
            try await processor.process(captured, topic: topics.credit) == .success(.credit(owner: "alice", amount: 5)))
        clock.nanoseconds += 9 * 86_400 * 1_000_000_000
        #expect(try await store.pruneNonces() == 0, "nothing the authority signed since shows the command expired")
        clock.nanoseconds -= 9 * 86_400 * 1_000_000_000
        #expect(try await processor.process(captured, topic: topics.credit) == .failure(.replayed))
        #expect(try await store.account(owner: "alice")?.balance == 5)
    }

    /// A Pi without a real-time clock boots with an old time, under which a command that
    /// expired in the real world looks valid. A later command of the authority shows the time
    /// that has passed at least: what expired before it is refused, and its nonce may go.
    @Test func aClockBehindTakesNoCommandTheAuthorityOutdated() async throws {
        let withheld = try signed(.credit(owner: "mallory", amount: 5), expiresAt: clock.seconds + 600)
        // Eight days later the authority credits someone for a week.
        clock.nanoseconds += 8 * 86_400 * 1_000_000_000
        let later = try signed(.credit(owner: "alice", amount: 1), expiresAt: clock.seconds + 7 * 86_400 - 60)
        #expect(
            try await processor.process(later, topic: topics.credit) == .success(.credit(owner: "alice", amount: 1)))
        // The clock falls back to before the withheld command's expiry.
        clock.nanoseconds -= 8 * 86_400 * 1_000_000_000
        #expect(try await processor.process(withheld, topic: topics.credit) == .failure(.outdated))
        #expect(try await store.account(owner: "mallory") == nil)
        #expect(try await rejections().last?.reason == "outdated")
        // The floor never passes a nonce whose command could still be valid.
        let floor = try #require(try await store.commandTimeFloor())
        #expect(floor <= Int64(clock.seconds) + 8 * 86_400)
        #expect(try await store.pruneNonces() == 0, "the later command's nonce stays")
    }

    @Test func aCommandWaitsForTimesyncdToSynchroniseTheClock() async throws {
        let directory = "/tmp/hotspotd-timesync-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkdir(directory, 0o755) == 0)
        defer {
            _ = unlink(directory + "/synchronized")
            _ = rmdir(directory)
        }
        #expect(!ClockSynchronization.timesyncd(directory: directory), "timesyncd runs and has not synchronised")
        #expect(
            ClockSynchronization.timesyncd(directory: directory + "/absent"),
            "no timesyncd: nothing says the clock is wrong")
        #expect(creat(directory + "/synchronized", 0o644) >= 0)
        #expect(ClockSynchronization.timesyncd(directory: directory))
    }

    @Test func garbageShortNoncesAndMismatchedTopicsAreRefused() async throws {
        #expect(try await processor.process([0xFF, 0x01, 0x02], topic: topics.pair) == .failure(.undecodable))
        #expect(
            try await processor.process(
                try signed(.credit(owner: "a", amount: 1), expiresAt: future, nonce: [1, 2]), topic: topics.credit)
                == .failure(.badNonce))
        #expect(
            try await processor.process(
                try signed(.credit(owner: "a", amount: 1), expiresAt: future), topic: topics.pair) == .failure(.invalid)
        )
        #expect(
            try await processor.process(try signed(.unpair(devAddr: 7), expiresAt: future), topic: topics.unpair)
                == .failure(.notPaired))
        #expect(try await rejections().map(\.reason) == ["undecodable", "bad_nonce", "invalid", "not_paired"])
    }
}

@Suite(.capturingLogs) struct RefusalLimiterTests {
    final class FakeClock: Sendable {
        let nanoseconds = Mutex<UInt64>(0)
        func advance(seconds: Double) { nanoseconds.withLock { $0 += UInt64(seconds * 1e9) } }
    }

    @Test func aBurstThenOnePerSecondAndTheRestCounted() {
        let clock = FakeClock()
        let limiter = RefusalLimiter(burst: 5, perSecond: 1) { clock.nanoseconds.withLock { $0 } }
        let first = (0..<8).map { _ in limiter.admit() }
        #expect(first.map(\.report) == [true, true, true, true, true, false, false, false])
        clock.advance(seconds: 1)
        #expect(limiter.admit() == (true, 3), "the next report says how many were not reported")
        #expect(limiter.admit().report == false)
        clock.advance(seconds: 100)
        #expect((0..<6).filter { _ in limiter.admit().report }.count == 5, "the bucket holds a burst at most")
        #expect(limiter.unreported == 5)
    }

    /// A flood of garbage on the command topics queues a bounded number of rejections, and a
    /// good command after it is still applied.
    @Test func aFloodOfGarbageCommandsQueuesBoundedRejections() async throws {
        let clock = TestClock()
        let store = try temporaryStore()
        let limiter = RefusalLimiter(burst: 60, perSecond: 1) { 0 }  // a clock that stands still: no refill
        let processor = CommandProcessor(
            store: store,
            authority: CommandAuthority(
                authority: authorityKey.publicKey, gatewayID: gatewayID, sealingKey: gatewayKey.sealingKey),
            topics: topics, limiter: limiter
        ) { clock.nanoseconds }
        for index in 0..<2_000 {
            #expect(
                try await processor.process([0xFF, UInt8(index & 0xFF)], topic: topics.credit) == .failure(.undecodable)
            )
        }
        let rejections = try await store.outbox(limit: 10_000).filter { $0.kind == .rejected }
        #expect(rejections.count == 60)
        #expect(limiter.unreported == 2_000 - 60)
        let good = try signed(.credit(owner: "alice", amount: 9), expiresAt: clock.seconds + 300)
        #expect(try await processor.process(good, topic: topics.credit) == .success(.credit(owner: "alice", amount: 9)))
    }
}
