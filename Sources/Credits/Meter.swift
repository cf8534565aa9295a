import ChirpStack
import Clocks
import Cryptography
import FoundationEssentials
import Frames
import LoRaPHY
import LoRaWAN
import Logging
import Messages
import Store
import SwiftProtobuf

/// What became of a received frame.
public enum MeterOutcome: Sendable, Equatable {
    /// Charged and put into the outbox.
    case forwarded(seq: Int64, credits: Int64, balance: Int64, owner: String)
    /// From an unpaired device, forwarded without charge (`forward_unpaired = true`).
    case forwardedUnpaired
    /// A join request of a paired DevEUI, forwarded uncharged: charged once the network
    /// answers it through this hotspot (`chargeAnsweredJoin`).
    case forwardedJoin(owner: String)
    /// A 52-byte proprietary frame: a proof-of-coverage beacon, for the coverage service.
    case beacon
    /// The same frame was charged a moment ago (heard on two channels or by two forwarders).
    case duplicate
    /// Not forwarded and not worth a rejection message: noise, a CRC error, a downlink heard
    /// on air, an unpaired device.
    case dropped(DropReason)
    /// Refused, and reported on `event/rejected`.
    case refused(UplinkRefusal)
}

/// What the meter has done with the frames it was given, since the start.
public struct MeterCounts: Sendable, Equatable {
    public var forwarded = 0
    public var forwardedUnpaired = 0
    public var forwardedJoins = 0
    /// Join requests charged when their join-accept was sent.
    public var chargedJoins = 0
    public var beacons = 0
    public var duplicates = 0
    public var dropped: [DropReason: Int] = [:]
    public var refused: [UplinkRefusal: Int] = [:]
    /// Rejection messages the store could not take.
    public var rejectionsNotQueued = 0
    /// Credits charged since the start: uplinks and answered joins.
    public var creditsCharged: Int64 = 0

    public init() {}

    mutating func add(_ outcome: MeterOutcome) {
        switch outcome {
        case .forwarded(_, let credits, _, _):
            forwarded += 1
            creditsCharged += credits
        case .forwardedUnpaired: forwardedUnpaired += 1
        case .forwardedJoin: forwardedJoins += 1
        case .beacon: beacons += 1
        case .duplicate: duplicates += 1
        case .dropped(let reason): dropped[reason, default: 0] += 1
        case .refused(let reason): refused[reason, default: 0] += 1
        }
    }
}

public enum DropReason: String, Sendable, Hashable {
    case crcError = "crc_error"
    case undecodable
    case downlink
    case unpaired
    case unsupported
    /// Left out by `[filters]`.
    case filteredDevAddr = "filtered_dev_addr"
    case filteredJoinEUI = "filtered_join_eui"
}

/// Why an uplink from a paired device was refused; the raw value is the published reason.
public enum UplinkRefusal: String, Sendable, Hashable {
    case badMIC = "bad_mic"
    case oldFCnt = "old_fcnt"
    case noCredit = "no_credit"
}

/// How the meter treats what it does not charge.
public struct MeterSettings: Sendable {
    /// Forward uplinks of unpaired devices, without charge.
    public var forwardUnpaired: Bool
    /// Charge join requests the network answers through this hotspot.
    public var chargeJoins: Bool
    /// How long the same frame counts as a duplicate.
    public var duplicateWindowNanoseconds: Int64
    /// Which uplinks are taken at all (`[filters]`).
    public var filters: UplinkFilters

    public init(
        forwardUnpaired: Bool = false, chargeJoins: Bool = true,
        duplicateWindowNanoseconds: Int64 = Nanoseconds.of(.seconds(5)), filters: UplinkFilters = .none
    ) {
        self.forwardUnpaired = forwardUnpaired
        self.chargeJoins = chargeJoins
        self.duplicateWindowNanoseconds = duplicateWindowNanoseconds
        self.filters = filters
    }
}

/// Meters every uplink against its owner's data credits.
///
/// A join request (matched to a pairing by DevEUI) has no MIC the hotspot can check, so anyone
/// can forge one: it is forwarded uncharged, and charged only when the network answers it with
/// a join-accept through this hotspot, which only a real join gets (`chargeAnsweredJoin`).
/// Its DevNonce is the network server's to judge.
///
/// A data uplink is matched to a pairing by DevAddr. With the
/// pairing's NwkSKey, the 32-bit frame counter is rebuilt from the 16 bits on air, must move
/// forward (at most 16384 ahead, LoRaWAN's MAX_FCNT_GAP), and the MIC must check: a forged or
/// replayed frame is refused and not charged. The price is Helium's (`Pricing`). The debit, the
/// new frame counter and the forwarded `gw.UplinkFrame` (with `dc`, `balance`, `owner` and `seq`
/// in `rx_info.metadata`) are one store transaction, planned here against the store's `Ledger`
/// and checked by the store.
public actor Meter {
    private let store: Store
    private let topics: Topics
    private let encoding: MessageEncoding
    private let settings: MeterSettings
    private let now: @Sendable () -> Int64
    private let logger: Logger
    private let arrivalClock: @Sendable () -> Int64
    private var recent: [FrameKey: Int64] = [:]
    private var recentOrder: [(FrameKey, Int64)] = []
    /// Entries of `recentOrder` before this index are forgotten.
    private var recentStart = 0
    /// Payloads `isDuplicate` remembered for the batch being metered.
    private var rememberedThisBatch: [FrameKey] = []
    public private(set) var counts = MeterCounts()
    /// Whether the last attempt to queue rejection messages failed.
    private var rejectionsFailing = false
    /// Unpaired sensors said in the log, and when (by `arrivalClock`).
    private var unpairedSaid: [String: Int64] = [:]
    /// Invented DevAddrs would each be new: the lines are said within a budget (20, then one
    /// a minute), the table above only decides which sensors are worth a line.
    private let unpairedLog: RefusalLimiter
    /// Refused uplinks, reported per (DevAddr, reason) with a count at a bounded rate.
    private var refusals: RefusalTally
    /// Join requests forwarded and not answered yet, by their `rx_info.context` (which a
    /// join-accept's `tx_info.context` repeats): the newest `pendingJoinsKept`, for
    /// `pendingJoinLifetime` (a join-accept comes 5 or 6 s after its request).
    private var pendingJoins: [[UInt8]: PendingJoin] = [:]
    static let pendingJoinsKept = 256
    static let pendingJoinsPerDevEUI = 4
    static let pendingJoinLifetime: Int64 = 30_000_000_000
    /// `command/down` is not signed: whoever may publish it could answer forged joins. One
    /// answered join is charged per DevEUI a minute at most, which a real sensor never needs.
    static let joinChargeInterval = Nanoseconds.of(.seconds(60))
    private var lastJoinCharge: [UInt64: Int64] = [:]

    private struct PendingJoin {
        var owner: String
        var devEUI: UInt64
        var payload: [UInt8]
        var credits: Int64
        var receivedAt: Int64
        var arrival: Int64
    }

    /// LoRaWAN's MAX_FCNT_GAP.
    public static let maximumFrameCounterGap: UInt32 = 16_384

    /// `now` is the wall clock in nanoseconds since the Unix epoch.
    public init(
        store: Store, topics: Topics, encoding: MessageEncoding = .protobuf, settings: MeterSettings = MeterSettings(),
        logger: Logger = Logger(label: "hotspotd.meter"), now: @escaping @Sendable () -> Int64,
        arrivalClock: @escaping @Sendable () -> Int64 = { Int64(monotonicNanoseconds()) }
    ) {
        self.logger = logger
        self.arrivalClock = arrivalClock
        unpairedLog = RefusalLimiter(burst: 20, perSecond: 1.0 / 60) { UInt64(max(arrivalClock(), 0)) }
        refusals = RefusalTally(
            limiter: RefusalLimiter(burst: 20, perSecond: 1.0 / 60) { UInt64(max(arrivalClock(), 0)) })
        self.store = store
        self.topics = topics
        self.encoding = encoding
        self.settings = settings
        self.now = now
    }

    public func meter(_ frame: RadioFrame) async throws(StoreError) -> MeterOutcome {
        try await meter(batch: [frame])[0]
    }

    /// Meters frames that arrived together, in order, as if one by one: their pairings are read
    /// in one visit to the store, and their charges and forwarded messages committed in one
    /// transaction (group commit). If the store fails, none of them is charged or forwarded.
    public func meter(batch frames: [RadioFrame]) async throws(StoreError) -> [MeterOutcome] {
        let decoded = frames.map(Self.decode)
        var outcomes: [MeterOutcome] = []
        outcomes.reserveCapacity(frames.count)
        for chunk in Self.transactions(decoded) {
            outcomes += try await meterOnce(
                frames[chunk.range], decoded[chunk.range], devAddrs: chunk.devAddrs, devEUIs: chunk.devEUIs)
        }
        return outcomes
    }

    /// As `meter(batch:)`, but a transaction the store refuses is tried again frame by frame,
    /// so that one frame the store cannot take costs itself and not the frames beside it; each
    /// frame's outcome, or why it could not be stored (then it is neither debited nor
    /// forwarded). Transactions committed before a failure keep their outcomes.
    public func meterEach(batch frames: [RadioFrame]) async -> [Result<MeterOutcome, StoreError>] {
        let decoded = frames.map(Self.decode)
        var results: [Result<MeterOutcome, StoreError>] = []
        results.reserveCapacity(frames.count)
        for chunk in Self.transactions(decoded) {
            do {
                let outcomes = try await meterOnce(
                    frames[chunk.range], decoded[chunk.range], devAddrs: chunk.devAddrs, devEUIs: chunk.devEUIs)
                results += outcomes.map { .success($0) }
            } catch  where chunk.range.count > 1 {
                for index in chunk.range {
                    let alone = Self.transactions([decoded[index]])[0]
                    do {
                        let outcome = try await meterOnce(
                            frames[index...index], decoded[index...index], devAddrs: alone.devAddrs,
                            devEUIs: alone.devEUIs)
                        results += outcome.map { .success($0) }
                    } catch {
                        results.append(.failure(error))
                    }
                }
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    private static func decode(_ frame: RadioFrame) -> PHYPayload? {
        frame.crc == .bad ? nil : try? PHYPayload.decode(frame.payload)
    }

    /// A batch cut into transactions in which a device appears once, so that every frame is
    /// decided exactly as it would be alone, after the ones before it.
    private static func transactions(_ decoded: [PHYPayload?]) -> [(
        range: Range<Int>, devAddrs: Set<UInt32>, devEUIs: Set<UInt64>
    )] {
        var result: [(range: Range<Int>, devAddrs: Set<UInt32>, devEUIs: Set<UInt64>)] = []
        var start = 0
        var devAddrs = Set<UInt32>()
        var devEUIs = Set<UInt64>()
        for (index, phy) in decoded.enumerated() {
            let repeated: Bool
            switch phy?.message {
            case .data(let data)?: repeated = devAddrs.contains(data.devAddr.rawValue)
            case .joinRequest(let request)?: repeated = devEUIs.contains(request.devEUI.rawValue)
            default: repeated = false
            }
            if repeated {
                result.append((start..<index, devAddrs, devEUIs))
                start = index
                devAddrs = []
                devEUIs = []
            }
            switch phy?.message {
            case .data(let data)?: devAddrs.insert(data.devAddr.rawValue)
            case .joinRequest(let request)?: devEUIs.insert(request.devEUI.rawValue)
            default: break
            }
        }
        if start < decoded.count || decoded.isEmpty { result.append((start..<decoded.count, devAddrs, devEUIs)) }
        return result
    }

    /// One transaction's worth, in which no device comes twice; `devAddrs` and `devEUIs` are
    /// the devices its frames claim.
    private func meterOnce(
        _ frames: ArraySlice<RadioFrame>, _ decoded: ArraySlice<PHYPayload?>, devAddrs: Set<UInt32>,
        devEUIs: Set<UInt64>
    ) async throws(StoreError) -> [MeterOutcome] {
        guard !frames.isEmpty else { return [] }
        rememberedThisBatch.removeAll(keepingCapacity: true)
        let lookup =
            devAddrs.isEmpty && devEUIs.isEmpty
            ? (byDevAddr: [:], byDevEUI: [:], ledger: Ledger(nextSeq: 0))
            : try await store.lookUp(devAddrs: devAddrs, devEUIs: devEUIs)
        let pairings = (lookup.byDevAddr, lookup.byDevEUI)

        var plans: [Plan] = []
        plans.reserveCapacity(frames.count)
        var charges: [PlannedCharge] = []
        // The outbox rows of the transaction, in the order the frames came. Refusals decided
        // before it are reported in place; the tally goes back as it was if it fails.
        var entries: [Pending] = []
        let tallyBefore = refusals
        var unpairedMessages: [NewMessage] = []
        var rejections: [NewMessage] = []
        // Counts left unreported by an earlier batch, once their interval has passed.
        for report in refusals.overdue(at: arrivalClock()) { rejections += self.report(report) }
        entries += rejections.map { .message($0) }
        for (frame, phy) in zip(frames, decoded) {
            defer {
                entries += unpairedMessages.map { .message($0) }
                unpairedMessages.removeAll(keepingCapacity: true)
                if case .refuse(let reason, let pairing, let detail, let time)? = plans.last {
                    var reported: [NewMessage] = []
                    plans[plans.count - 1] = .done(
                        refuse(reason, pairing: pairing, detail: detail, at: time, into: &reported))
                    entries += reported.map { .message($0) }
                }
            }
            let time = frame.receivedAt ?? now()
            guard frame.crc != .bad else {
                plans.append(.done(.dropped(.crcError)))
                continue
            }
            guard let phy else {
                plans.append(.done(.dropped(.undecodable)))
                continue
            }
            switch phy.message {
            case .proprietary:
                plans.append(
                    .done(frame.payload.count == 52 && frame.payload[0] == 0xE0 ? .beacon : .dropped(.unsupported)))
            case .joinAccept, .rejoinRequest:
                plans.append(.done(.dropped(phy.mType.isUplink ? .unsupported : .downlink)))
            case .joinRequest(let request):
                guard settings.filters.admits(joinEUI: request.joinEUI.rawValue) else {
                    plans.append(.done(.dropped(.filteredJoinEUI)))
                    continue
                }
                guard let pairing = pairings.1[request.devEUI.rawValue] else {
                    plans.append(unpaired(frame, sensor: "DevEUI \(request.devEUI)", at: time, into: &unpairedMessages))
                    continue
                }
                if isDuplicate(frame.payload) {
                    plans.append(.done(.duplicate))
                    continue
                }
                plans.append(
                    forwardJoin(
                        frame, pairing: pairing, devEUI: request.devEUI.rawValue, at: time, into: &unpairedMessages))
            case .data(let data):
                guard phy.mType.isUplink else {
                    plans.append(.done(.dropped(.downlink)))
                    continue
                }
                guard settings.filters.admits(devAddr: data.devAddr.rawValue) else {
                    plans.append(.done(.dropped(.filteredDevAddr)))
                    continue
                }
                guard let pairing = pairings.0[data.devAddr.rawValue] else {
                    plans.append(unpaired(frame, sensor: "DevAddr \(data.devAddr)", at: time, into: &unpairedMessages))
                    continue
                }
                if isDuplicate(frame.payload) {
                    plans.append(.done(.duplicate))
                    continue
                }
                var fCnt: UInt32?
                if let key = pairing.nwkSKey {
                    let lastFCnt = pairing.lastFCnt
                    let full = LoRaWANCrypto.fullFrameCounter(received: data.fCnt, last: lastFCnt)
                    if let last = lastFCnt, full <= last || full - last > Self.maximumFrameCounterGap {
                        plans.append(.refuse(.oldFCnt, pairing, "FCnt \(data.fCnt) is not after \(last)", time))
                        continue
                    }
                    guard (try? phy.hasValidMIC(nwkSKey: key, fCnt: full)) == true else {
                        plans.append(.refuse(.badMIC, pairing, "the MIC does not check with the paired NwkSKey", time))
                        continue
                    }
                    fCnt = full
                }
                plans.append(.charge(charges.count))
                entries.append(.charge(charges.count))
                charges.append(
                    PlannedCharge(
                        debit: Debit(
                            owner: pairing.owner, devAddr: pairing.devAddr, devEUI: pairing.devEUI,
                            payload: frame.payload, credits: Pricing.credits(forPayloadOf: frame.payload.count),
                            fCnt: fCnt, time: time, forward: frame),
                        pairing: pairing))
            }
        }

        let planned = charges
        let results: [Settled]
        do {
            results = try await commit(
                entries, debits: planned.map(\.debit), ledger: lookup.ledger, at: frames.last?.receivedAt ?? now())
        } catch {
            // Nothing of the batch was stored: its frames may come again (one by one) and must
            // not be taken for duplicates then, nor their refusals counted twice.
            for payload in rememberedThisBatch where recent[payload] != nil { recent[payload] = nil }
            refusals = tallyBefore
            throw error
        }

        var outcomes: [MeterOutcome] = []
        outcomes.reserveCapacity(frames.count)
        // Refusals only the transaction could decide (credit, a frame counter overtaken) are
        // reported after it.
        rejections.removeAll()
        for plan in plans {
            let outcome: MeterOutcome
            switch plan {
            case .done(let done):
                outcome = done
            case .refuse(let reason, let pairing, let detail, let time):
                outcome = refuse(reason, pairing: pairing, detail: detail, at: time, into: &rejections)
            case .charge(let index):
                let charge = planned[index].debit
                let pairing = planned[index].pairing
                switch results[index] {
                case .charged(let seq, let balance):
                    logger.debug(
                        "uplink charged",
                        metadata: [
                            "DEV_ADDR": "\(DevAddr(pairing.devAddr))", "OWNER": "\(pairing.owner)",
                            "DC": "\(charge.credits)",
                            "BALANCE": "\(balance)", "SEQ": "\(seq)",
                        ])
                    outcome = .forwarded(seq: seq, credits: charge.credits, balance: balance, owner: pairing.owner)
                case .insufficientCredit(let balance):
                    outcome = refuse(
                        .noCredit, pairing: pairing, detail: "\(charge.credits) DC needed, \(balance) DC left",
                        at: charge.time, into: &rejections)
                case .staleFrameCounter:
                    outcome = refuse(
                        .oldFCnt, pairing: pairing,
                        detail: "FCnt \(charge.fCnt.map(String.init) ?? "?") was overtaken by another frame",
                        at: charge.time, into: &rejections)
                case .unencodable:
                    outcome = .dropped(.undecodable)
                }
            }
            counts.add(outcome)
            outcomes.append(outcome)
        }
        // The charges are committed: a failure here loses the rejection messages, not the outcomes.
        await queue(rejections)
        return outcomes
    }

    /// Puts rejection messages into the outbox; a store that refuses them is logged when it
    /// starts, not for every frame while it lasts.
    private func queue(_ rejections: [NewMessage]) async {
        guard !rejections.isEmpty else { return }
        do {
            try await store.enqueue(rejections, at: now())
            rejectionsFailing = false
        } catch {
            counts.rejectionsNotQueued += rejections.count
            if !rejectionsFailing {
                logger.error("cannot queue \(rejections.count) rejection message(s): \(error.message)")
            }
            rejectionsFailing = true
        }
    }

    /// What the meter decided for one frame of a batch before the store had its say.
    private enum Plan {
        case done(MeterOutcome)
        case charge(Int)
        case refuse(UplinkRefusal, Pairing, String, Int64)
    }

    private struct PlannedCharge: Sendable {
        var debit: Debit
        var pairing: Pairing
    }

    /// An uplink to charge, before the ledger is consulted.
    private struct Debit: Sendable {
        var owner: String
        var devAddr: UInt32?
        var devEUI: UInt64?
        var payload: [UInt8]
        var credits: Int64
        var fCnt: UInt32?
        var time: Int64
        /// The frame to forward once charged; nil for a join request, forwarded before.
        var forward: RadioFrame?
    }

    /// A transaction's rows before the ledger is consulted: a message, or the charge at this
    /// index of the debits.
    private enum Pending: Sendable {
        case message(NewMessage)
        case charge(Int)
    }

    /// What became of a debit.
    private enum Settled: Sendable {
        case charged(seq: Int64, balance: Int64)
        /// Not enough credit; nothing changed.
        case insufficientCredit(balance: Int64)
        /// The frame counter was overtaken (by a frame metered at the same time); nothing changed.
        case staleFrameCounter
        /// The forwarded message could not be encoded; nothing changed.
        case unencodable
    }

    /// How many times a transaction is planned when the store finds the ledger moved under it.
    static let planAttempts = 4

    /// Plans each debit against `ledger` (its sequence number, its owner's balance, its frame
    /// counter, the message it forwards with its seq and balance) and records the transaction's
    /// rows in order. The store checks the plan; when the ledger has moved since it was read (a
    /// top-up or a join charged meanwhile), it is read again and the plan made again.
    private func commit(_ pending: [Pending], debits: [Debit], ledger: Ledger, at time: Int64)
        async throws(StoreError) -> [Settled]
    {
        var ledger = ledger
        var attempt = 1
        while true {
            var planned = ledger
            var settled: [Settled] = []
            settled.reserveCapacity(debits.count)
            var entries: [Store.Entry] = []
            entries.reserveCapacity(pending.count)
            for row in pending {
                switch row {
                case .message(let message):
                    entries.append(.message(message))
                case .charge(let index):
                    let (outcome, charge) = plan(debits[index], in: &planned)
                    settled.append(outcome)
                    if let charge { entries.append(.charge(charge)) }
                }
            }
            do {
                try await store.record(entries, at: time)
                return settled
            } catch  where error.kind == .outdated && attempt < Self.planAttempts {
                attempt += 1
                logger.debug(
                    "the ledger moved while a charge was planned; planning again", metadata: ["WHY": "\(error)"])
                ledger = try await store.ledger(
                    owners: Set(debits.map(\.owner)),
                    devAddrs: Set(debits.compactMap { $0.fCnt == nil ? nil : $0.devAddr }))
            }
        }
    }

    /// One debit against the ledger as planned so far, which it moves on.
    private func plan(_ debit: Debit, in ledger: inout Ledger) -> (Settled, Charge?) {
        if let devAddr = debit.devAddr, let fCnt = debit.fCnt, let last = ledger.frameCounters[devAddr], fCnt <= last {
            return (.staleFrameCounter, nil)
        }
        let balance = ledger.balances[debit.owner] ?? 0
        guard balance >= debit.credits else { return (.insufficientCredit(balance: balance), nil) }
        let seq = ledger.nextSeq
        var messages: [NewMessage] = []
        if let frame = debit.forward {
            let metadata = [
                "dc": String(debit.credits), "balance": String(balance - debit.credits), "owner": debit.owner,
                "seq": String(seq),
            ]
            let uplink = UplinkMessages.uplinkFrame(
                frame, gatewayID: topics.gatewayID, uplinkID: UInt32(truncatingIfNeeded: seq), metadata: metadata)
            guard let payload = try? encoding.encode(uplink) else { return (.unencodable, nil) }
            messages.append(NewMessage(kind: .uplink, topic: topics.up, messageID: "up-\(seq)", payload: payload))
        }
        ledger.nextSeq += 1
        ledger.balances[debit.owner] = balance - debit.credits
        if let devAddr = debit.devAddr, let fCnt = debit.fCnt { ledger.frameCounters[devAddr] = fCnt }
        let charge = Charge(
            owner: debit.owner, devAddr: debit.devAddr, devEUI: debit.devEUI, phyPayload: debit.payload,
            credits: debit.credits, fCnt: debit.fCnt, receivedAt: debit.time, seq: seq, balanceBefore: balance,
            messages: messages)
        return (.charged(seq: seq, balance: balance - debit.credits), charge)
    }

    /// Says an unpaired sensor's uplink once an hour at most, so that an owner sees why a sensor
    /// they forgot to pair is not charged. The air is full of other networks' sensors: the
    /// last `unpairedRemembered` are remembered, the one said longest ago forgotten first.
    private func noteUnpaired(_ sensor: String) {
        let time = arrivalClock()
        if let said = unpairedSaid[sensor], time - said < Self.unpairedInterval { return }
        if unpairedSaid[sensor] == nil, unpairedSaid.count >= Self.unpairedRemembered,
            let oldest = unpairedSaid.min(by: { $0.value < $1.value })?.key
        {
            unpairedSaid[oldest] = nil
        }
        unpairedSaid[sensor] = time
        guard unpairedLog.admit().report else { return }
        if settings.forwardUnpaired {
            logger.info("uplink from an unpaired sensor forwarded uncharged (dc 0)", metadata: ["SENSOR": "\(sensor)"])
        } else {
            logger.info(
                """
                uplink from an unpaired sensor dropped; credits.forward_unpaired = true forwards such uplinks \
                uncharged
                """,
                metadata: ["SENSOR": "\(sensor)"])
        }
    }

    static let unpairedRemembered = 256
    static let unpairedInterval: Int64 = 3_600_000_000_000

    private func unpaired(_ frame: RadioFrame, sensor: String, at time: Int64, into messages: inout [NewMessage])
        -> Plan
    {
        noteUnpaired(sensor)
        guard settings.forwardUnpaired else { return .done(.dropped(.unpaired)) }
        if isDuplicate(frame.payload) { return .done(.duplicate) }
        let id = UInt32.random(in: 1...UInt32.max)
        let uplink = UplinkMessages.uplinkFrame(frame, gatewayID: topics.gatewayID, uplinkID: id, metadata: ["dc": "0"])
        guard let payload = try? encoding.encode(uplink) else { return .done(.dropped(.undecodable)) }
        messages.append(
            NewMessage(kind: .uncharged, topic: topics.up, messageID: "up-unpaired-\(time)-\(id)", payload: payload))
        return .done(.forwardedUnpaired)
    }

    /// Reports refusal counts left waiting once their interval has passed: called now and then,
    /// so that counts are said even when no more frames come.
    public func reportOverdueRefusals() async {
        await queue(refusals.overdue(at: arrivalClock()).flatMap(report))
    }

    /// Forwards a paired sensor's join request uncharged, and remembers it until the network
    /// answers it or it is too old to be answered.
    private func forwardJoin(
        _ frame: RadioFrame, pairing: Pairing, devEUI: UInt64, at time: Int64, into messages: inout [NewMessage]
    ) -> Plan {
        let credits = settings.chargeJoins ? Pricing.credits(forPayloadOf: frame.payload.count) : 0
        let id = UInt32.random(in: 1...UInt32.max)
        let metadata = ["dc": "0", "owner": pairing.owner, "join_dc": String(credits)]
        let uplink = UplinkMessages.uplinkFrame(frame, gatewayID: topics.gatewayID, uplinkID: id, metadata: metadata)
        guard let payload = try? encoding.encode(uplink) else { return .done(.dropped(.undecodable)) }
        messages.append(
            NewMessage(kind: .uncharged, topic: topics.up, messageID: "up-join-\(time)-\(id)", payload: payload))
        let arrival = arrivalClock()
        pendingJoins = pendingJoins.filter { arrival - $0.value.arrival <= Self.pendingJoinLifetime }
        // The newest few of each DevEUI, so that forgeries under one sensor's DevEUI cannot push
        // another sensor's real join out; and a bound on all of them.
        let mine = pendingJoins.filter { $0.value.devEUI == devEUI }
        if mine.count >= Self.pendingJoinsPerDevEUI,
            let oldest = mine.min(by: { $0.value.arrival < $1.value.arrival })?.key
        {
            pendingJoins[oldest] = nil
        }
        if pendingJoins.count >= Self.pendingJoinsKept,
            let oldest = pendingJoins.min(by: { $0.value.arrival < $1.value.arrival })?.key
        {
            pendingJoins[oldest] = nil
        }
        pendingJoins[UplinkMessages.context(of: frame)] = PendingJoin(
            owner: pairing.owner, devEUI: devEUI, payload: frame.payload, credits: credits, receivedAt: time,
            arrival: arrival)
        return .done(.forwardedJoin(owner: pairing.owner))
    }

    /// What charging an answered join came to.
    public enum JoinCharge: Sendable, Equatable {
        case charged(owner: String, credits: Int64, seq: Int64, balance: Int64)
        /// Answered, but free (`charge_joins = false`), or the owner's credit ran out.
        case notCharged(owner: String, reason: String)
        /// No join request forwarded in the last 30 s has this context.
        case noSuchJoin
    }

    /// Charges the join request whose `rx_info.context` is `context`, once the network sent a
    /// join-accept for it through this hotspot. Once per join request.
    public func chargeAnsweredJoin(context: [UInt8]) async throws(StoreError) -> JoinCharge {
        guard let join = pendingJoins.removeValue(forKey: context),
            arrivalClock() - join.arrival <= Self.pendingJoinLifetime
        else { return .noSuchJoin }
        guard join.credits > 0 else { return .notCharged(owner: join.owner, reason: "charge_joins is false") }
        let arrival = arrivalClock()
        if let last = lastJoinCharge[join.devEUI], arrival - last < Self.joinChargeInterval {
            return .notCharged(owner: join.owner, reason: "a join of this DevEUI was charged less than a minute ago")
        }
        lastJoinCharge = lastJoinCharge.filter { arrival - $0.value < Self.joinChargeInterval }
        lastJoinCharge[join.devEUI] = arrival
        let debit = Debit(
            owner: join.owner, devAddr: nil, devEUI: join.devEUI, payload: join.payload, credits: join.credits,
            fCnt: nil, time: join.receivedAt, forward: nil)
        // The join went out uncharged already: its charge is in the ledger and the receipts,
        // with no second uplink message.
        let ledger = try await store.ledger(owners: [join.owner], devAddrs: [])
        switch try await commit([.charge(0)], debits: [debit], ledger: ledger, at: now())[0] {
        case .charged(let seq, let balance):
            counts.chargedJoins += 1
            counts.creditsCharged += join.credits
            logger.info(
                "join answered through this hotspot charged",
                metadata: [
                    "DEV_EUI": "\(EUI64(join.devEUI))", "OWNER": "\(join.owner)", "DC": "\(join.credits)",
                    "BALANCE": "\(balance)", "SEQ": "\(seq)",
                ])
            return .charged(owner: join.owner, credits: join.credits, seq: seq, balance: balance)
        case .insufficientCredit(let balance):
            logger.notice(
                "join answered through this hotspot not charged: \(join.credits) DC needed, \(balance) DC left",
                metadata: [
                    "DEV_EUI": "\(EUI64(join.devEUI))", "OWNER": "\(join.owner)",
                ])
            return .notCharged(owner: join.owner, reason: "no_credit")
        case .staleFrameCounter, .unencodable:
            return .notCharged(owner: join.owner, reason: "stale")
        }
    }

    /// Counts a refusal; reports it (a log line and an `event/rejected` message) when its
    /// (DevAddr, reason) may be reported again, with the count of those not reported before.
    private func refuse(
        _ reason: UplinkRefusal, pairing: Pairing, detail: String, at time: Int64, into messages: inout [NewMessage]
    ) -> MeterOutcome {
        let refusal = RefusalTally.Refusal(reason: reason, pairing: pairing, detail: detail, time: time)
        if let report = refusals.add(refusal, at: arrivalClock()) { messages += self.report(report) }
        return .refused(reason)
    }

    private func report(_ report: RefusalTally.Report) -> [NewMessage] {
        let refusal = report.latest
        let pairing = refusal.pairing
        var metadata: Logger.Metadata = [
            "REASON": "\(refusal.reason.rawValue)", "DEV_ADDR": "\(DevAddr(pairing.devAddr))",
            "OWNER": "\(pairing.owner)",
        ]
        if report.count > 1 { metadata["COUNT"] = "\(report.count)" }
        logger.notice(
            report.count > 1
                ? "uplinks refused: \(refusal.detail) (the last of \(report.count) since the last report)"
                : "uplink refused: \(refusal.detail)", metadata: metadata)
        var rejection = Hotspotd_Rejection()
        rejection.reason = refusal.reason.rawValue
        rejection.detail = refusal.detail
        rejection.devAddr = DevAddr(pairing.devAddr).description
        if let devEUI = pairing.devEUI { rejection.devEui = EUI64(devEUI).description }
        rejection.owner = pairing.owner
        rejection.time = UInt64(max(refusal.time, 0))
        rejection.topic = topics.up
        rejection.count = UInt32(clamping: report.count)
        guard let payload = try? encoding.encode(rejection) else { return [] }
        return [
            NewMessage(
                kind: .rejected, topic: topics.rejected,
                messageID: "rejected-\(refusal.time)-\(refusal.reason.rawValue)-\(DevAddr(pairing.devAddr))",
                payload: payload)
        ]
    }

    /// Whether the same bytes were metered within the window, by this machine's monotonic clock
    /// (forwarders' clocks may disagree); remembers them otherwise.
    private func isDuplicate(_ payload: [UInt8]) -> Bool {
        let payload = FrameKey(payload)
        let time = arrivalClock()
        let window = settings.duplicateWindowNanoseconds
        while recentStart < recentOrder.count,
            time - recentOrder[recentStart].1 > window || recentOrder.count - recentStart > 4096
        {
            let oldest = recentOrder[recentStart]
            recentStart += 1
            if recent[oldest.0] == oldest.1 { recent[oldest.0] = nil }
        }
        // The forgotten head goes in one move once it is as long as what is kept.
        if recentStart > 64 && recentStart * 2 > recentOrder.count {
            recentOrder.removeFirst(recentStart)
            recentStart = 0
        }
        if let seen = recent[payload], time - seen <= window { return true }
        recent[payload] = time
        rememberedThisBatch.append(payload)
        recentOrder.append((payload, time))
        return false
    }
}

/// A frame's bytes as a dictionary key, hashed once over the whole buffer (an array of bytes
/// hashes byte by byte, on every lookup).
struct FrameKey: Hashable {
    let bytes: [UInt8]
    let hash: Int

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        var hasher = Hasher()
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        hash = hasher.finalize()
    }

    static func == (a: FrameKey, b: FrameKey) -> Bool { a.hash == b.hash && a.bytes == b.bytes }

    func hash(into hasher: inout Hasher) { hasher.combine(hash) }
}

/// Refused uplinks, counted per (DevAddr, reason) and reported at a bounded rate. Anyone with a
/// radio can make a paired sensor's frames fail (garbage under its DevAddr, recorded frames
/// replayed): a report for each would fill the journal, and with the broker away, the outbox.
/// A (DevAddr, reason) is reported at once the first time, then at most once a
/// `reportInterval`, the report counting the refusals since the last one; all reports share
/// `limiter`'s budget. The table holds paired DevAddrs only (refusals are for paired sensors),
/// at most `maximumEntries` of them.
struct RefusalTally {
    struct Refusal {
        var reason: UplinkRefusal
        var pairing: Pairing
        var detail: String
        var time: Int64
    }

    struct Report {
        var latest: Refusal
        var count: Int
    }

    private struct Key: Hashable {
        var devAddr: UInt32
        var reason: UplinkRefusal
    }

    private struct Entry {
        var latest: Refusal
        var unreported = 0
        var reportedAt: Int64?
    }

    static let reportInterval = Nanoseconds.of(.seconds(60))
    static let maximumEntries = 4096
    private static let sweepInterval = Nanoseconds.of(.seconds(5))

    private let limiter: RefusalLimiter
    private var entries: [Key: Entry] = [:]
    private var lastSweep: Int64?

    init(limiter: RefusalLimiter) {
        self.limiter = limiter
    }

    /// Counts `refusal` (at `now`, a monotonic time); the report to make now, if any.
    mutating func add(_ refusal: Refusal, at now: Int64) -> Report? {
        let key = Key(devAddr: refusal.pairing.devAddr, reason: refusal.reason)
        if entries[key] == nil, entries.count >= Self.maximumEntries { forgetOne() }
        var entry = entries[key] ?? Entry(latest: refusal)
        entry.latest = refusal
        entry.unreported += 1
        defer { entries[key] = entry }
        return report(&entry, at: now)
    }

    /// Reports of counts left waiting whose interval has passed (looked for every few seconds).
    mutating func overdue(at now: Int64) -> [Report] {
        if let lastSweep, now - lastSweep < Self.sweepInterval { return [] }
        lastSweep = now
        var reports: [Report] = []
        for key in entries.keys where entries[key]!.unreported > 0 {
            var entry = entries[key]!
            if let report = report(&entry, at: now) { reports.append(report) }
            entries[key] = entry
        }
        return reports
    }

    private func report(_ entry: inout Entry, at now: Int64) -> Report? {
        if let reportedAt = entry.reportedAt, now - reportedAt < Self.reportInterval { return nil }
        guard limiter.admit().report else { return nil }
        defer {
            entry.unreported = 0
            entry.reportedAt = now
        }
        return Report(latest: entry.latest, count: entry.unreported)
    }

    /// Makes room: forgets the entry reported longest ago with nothing waiting, or else the
    /// one with the fewest waiting (its count is lost from the reports, not from the stats).
    private mutating func forgetOne() {
        let idle = entries.filter { $0.value.unreported == 0 }.min {
            ($0.value.reportedAt ?? .min) < ($1.value.reportedAt ?? .min)
        }
        if let key = idle?.key ?? entries.min(by: { $0.value.unreported < $1.value.unreported })?.key {
            entries[key] = nil
        }
    }
}
