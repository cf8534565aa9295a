import Clocks
import Cryptography

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A sensor paired to an owner's account.
public struct Pairing: Sendable, Equatable {
    public var devAddr: UInt32
    public var devEUI: UInt64?
    public var owner: String
    /// With a network session key, MICs are checked and the frame counter must move forward.
    public var nwkSKey: [UInt8]?
    /// The last 32-bit frame counter charged.
    public var lastFCnt: UInt32?
    public var pairedAt: Int64

    public init(
        devAddr: UInt32, devEUI: UInt64? = nil, owner: String, nwkSKey: [UInt8]? = nil, lastFCnt: UInt32? = nil,
        pairedAt: Int64
    ) {
        self.devAddr = devAddr
        self.devEUI = devEUI
        self.owner = owner
        self.nwkSKey = nwkSKey
        self.lastFCnt = lastFCnt
        self.pairedAt = pairedAt
    }
}

/// An owner's data-credit account.
public struct Account: Sendable, Equatable {
    public var owner: String
    public var balance: Int64
    /// The head of the owner's chain of charged uplinks (32 zero bytes before the first).
    public var chain: [UInt8]
    public var charged: Int64
}

/// What goes to the broker: a row of the outbox until the broker has acknowledged it.
public struct OutboxMessage: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// Forwarded uplinks: past `mqtt.outbox_max` of them, the oldest are dropped.
        case uplink
        /// Frames forwarded uncharged (join requests, unpaired sensors' uplinks): anyone can
        /// send them, so they have a cap of their own and never push a charged uplink out.
        case uncharged
        /// Signed reports and receipts, acknowledgements, rejections: each kind has a cap of its
        /// own (`limit`), past which its oldest are dropped; they never push out an uplink.
        case receipt, beacon, witness, rejected, ack, other

        /// The most rows of this kind the outbox keeps (uplinks: the store's `outboxLimit`).
        /// Sized for a week without the broker: receipts come once per owner and interval,
        /// beacons a few a day; witnesses, rejections and acks come from outside, at rates
        /// their producers bound, and the newest matter most.
        public var limit: Int? {
            switch self {
            case .uplink: nil
            case .receipt: 100_000
            case .beacon: 500
            case .witness: 3_000
            case .uncharged, .rejected, .ack, .other: 2_000
            }
        }
    }

    public var id: Int64
    public var kind: Kind
    public var topic: String
    /// A stable id the consumer can drop an at-least-once duplicate by.
    public var messageID: String
    public var payload: [UInt8]
    public var createdAt: Int64
}

/// A message to put into the outbox.
public struct NewMessage: Sendable, Equatable {
    public var kind: OutboxMessage.Kind
    public var topic: String
    public var messageID: String
    public var payload: [UInt8]

    public init(kind: OutboxMessage.Kind, topic: String, messageID: String, payload: [UInt8]) {
        self.kind = kind
        self.topic = topic
        self.messageID = messageID
        self.payload = payload
    }
}

/// An uplink to charge, planned against the `Ledger` the store last gave: the sequence number
/// it takes, the owner's balance before it and the messages it causes (built by the caller,
/// who knows what they say). The store checks the plan inside its transaction and refuses it
/// (`StoreError.Kind.outdated`, nothing changed) when the ledger moved since: another charge
/// took the number or the credit. Credits added since (a top-up only adds) leave the plan
/// good: they count as coming after the charge, whose message says the balance it left.
public struct Charge: Sendable {
    public var owner: String
    public var devAddr: UInt32?
    public var devEUI: UInt64?
    public var phyPayload: [UInt8]
    public var credits: Int64
    /// The frame counter to remember for the pairing (data frames with a session key).
    public var fCnt: UInt32?
    public var receivedAt: Int64
    /// The sequence number the charge takes.
    public var seq: Int64
    /// The owner's balance before the charge (at least `credits`).
    public var balanceBefore: Int64
    /// The outbox rows the charge causes, written with it.
    public var messages: [NewMessage]

    public init(
        owner: String, devAddr: UInt32?, devEUI: UInt64?, phyPayload: [UInt8], credits: Int64, fCnt: UInt32?,
        receivedAt: Int64, seq: Int64, balanceBefore: Int64, messages: [NewMessage] = []
    ) {
        self.owner = owner
        self.devAddr = devAddr
        self.devEUI = devEUI
        self.phyPayload = phyPayload
        self.credits = credits
        self.fCnt = fCnt
        self.receivedAt = receivedAt
        self.seq = seq
        self.balanceBefore = balanceBefore
        self.messages = messages
    }

    /// The owner's balance after the charge.
    public var balanceAfter: Int64 { balanceBefore - credits }
}

/// What decides a charge, as the store holds it: the sequence number the next charge takes,
/// the owners' balances and the paired sensors' last charged frame counters.
public struct Ledger: Sendable, Equatable {
    public var nextSeq: Int64
    /// By owner; an owner without an account has none (a balance of 0).
    public var balances: [String: Int64]
    /// By DevAddr, for the pairings that have one.
    public var frameCounters: [UInt32: UInt32]

    public init(nextSeq: Int64, balances: [String: Int64] = [:], frameCounters: [UInt32: UInt32] = [:]) {
        self.nextSeq = nextSeq
        self.balances = balances
        self.frameCounters = frameCounters
    }
}

/// A period of one owner's charges, as a usage receipt states it.
public struct ReceiptSummary: Sendable, Equatable {
    public var owner: String
    public var periodStart: Int64
    public var periodEnd: Int64
    public var uplinks: Int64
    public var bytes: Int64
    public var credits: Int64
    public var firstSeq: Int64
    public var lastSeq: Int64
    /// The owner's chain head before the period's first charge, and after its last.
    public var previousChain: [UInt8]
    public var chain: [UInt8]

    public init(
        owner: String, periodStart: Int64, periodEnd: Int64, uplinks: Int64, bytes: Int64, credits: Int64,
        firstSeq: Int64, lastSeq: Int64, previousChain: [UInt8], chain: [UInt8]
    ) {
        self.owner = owner
        self.periodStart = periodStart
        self.periodEnd = periodEnd
        self.uplinks = uplinks
        self.bytes = bytes
        self.credits = credits
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
        self.previousChain = previousChain
        self.chain = chain
    }
}

/// The outcome of applying a signed command.
public enum CommandApplication: Sendable, Equatable {
    case applied
    /// The nonce was applied before: nothing changed.
    case replayed
    /// Unpair of a DevAddr that is not paired.
    case notPaired
    /// A credit that would take the balance past `Store.maximumBalance`: nothing changed.
    case balanceLimit
    /// The command expired before a moment the authority's own commands prove has passed
    /// (`commandTimeFloor`): nothing changed, whatever the clock says.
    case outdated
}

/// hotspotd's one SQLite database: pairings, accounts, applied command nonces, the chain of
/// charged uplinks, receipts, and the outbox. WAL mode; the schema is versioned (PRAGMA
/// user_version) and migrated on open; a file that is not a database, or is damaged, is reported
/// with its path and never overwritten.
///
/// The store is an actor on a thread of its own: SQLite's writes and fsyncs block, and they must
/// not block Swift's cooperative pool. Every state change and the messages it causes are one
/// transaction, so a crash or power loss leaves either both or neither.
public actor Store {
    public static let schemaVersion = 4
    public nonisolated let path: String
    private nonisolated let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private let db: SQLiteConnection
    /// Who waits for messages to be added to the outbox.
    private var outboxWatchers: [Int: AsyncStream<Void>.Continuation] = [:]
    private var nextWatcher = 0
    /// Messages in the outbox, kept here so that the cap needs no COUNT(*) over a million rows.
    private var depth: Int
    /// The outbox's cap: past it the oldest uplinks are dropped, never other messages.
    public private(set) var outboxLimit: Int
    /// Uplinks dropped at the cap since the store was opened.
    public private(set) var droppedAtCap = 0
    /// Other rows dropped at their kind's cap since the store was opened.
    public private(set) var droppedAtKindCap: [OutboxMessage.Kind: Int] = [:]

    /// Opens (creating when absent) the database at `path` and migrates it.
    public init(path: String, outboxLimit: Int = 1_000_000) throws(StoreError) {
        self.path = path
        self.outboxLimit = outboxLimit

        do {
            executor = try ThreadExecutor(name: "store")
        } catch {
            throw StoreError(.other, error.message)
        }
        try Self.restrictToOwner(path)
        db = try SQLiteConnection(path: path)
        try Self.prepare(db)
        depth = Int(try db.query("SELECT COUNT(*) FROM outbox").first?.first?.integer ?? 0)
    }

    /// Opens the existing database at `path` for reading only: no migration, no change of journal
    /// mode, nothing written (the CLI's view beside a running agent, maybe an agent of another
    /// version). A schema this hotspotd does not know is refused.
    public init(readingFrom path: String) throws(StoreError) {
        self.path = path
        self.outboxLimit = 0
        do {
            executor = try ThreadExecutor(name: "store-reader")
        } catch {
            throw StoreError(.other, error.message)
        }
        db = try SQLiteConnection(path: path, readOnly: true)
        let version = try db.query("PRAGMA user_version").first?.first?.integer ?? 0
        guard version == Int64(Self.schemaVersion) else {
            throw StoreError(
                version > Int64(Self.schemaVersion) ? .tooNew : .other,
                """
                \(path) has schema version \(version), this hotspotd reads version \(Self.schemaVersion): use the \
                hotspotd that runs the agent
                """
            )
        }
        depth = Int(try db.query("SELECT COUNT(*) FROM outbox").first?.first?.integer ?? 0)
    }

    /// The store holds every paired sensor's NwkSKey: it is created readable by its owner only
    /// (0600, whatever the umask; SQLite gives its -wal and -shm files the same mode), and an
    /// existing one that group or others may read is narrowed to its owner.
    static func restrictToOwner(_ path: String) throws(StoreError) {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            close(fd)
            return
        }
        guard errno == EEXIST else { return }  // SQLite's open says what is wrong, with its path
        var status = stat()
        if stat(path, &status) == 0, status.st_mode & 0o077 != 0, status.st_uid == geteuid() {
            _ = chmod(path, status.st_mode & 0o700)
        }
    }

    /// Opens `hotspotd.db` in `directory`, creating the directory (mode 0700) when needed.
    public static func open(directory: String, outboxLimit: Int = 1_000_000) throws(StoreError) -> Store {
        if access(directory, F_OK) != 0 && mkdir(directory, 0o700) != 0 {
            throw StoreError(
                .readOnly, "cannot create the data directory \(directory): \(String(cString: strerror(errno)))")
        }
        return try Store(path: directory + "/hotspotd.db", outboxLimit: outboxLimit)
    }

    /// The page size of a new database.
    public static let pageSize = 1024

    private static func prepare(_ db: SQLiteConnection) throws(StoreError) {
        // The first read tells a database from anything else.
        let version = try db.query("PRAGMA user_version").first?.first?.integer ?? 0
        if version > Int64(schemaVersion) {
            throw StoreError(
                .tooNew,
                """
                \(db.path) has schema version \(version), newer than this hotspotd's \(schemaVersion): install the \
                newer hotspotd again, or move the file aside
                """
            )
        }
        if version == 0 {
            // A new database: small pages. A commit writes every page it touched to the WAL in
            // full, and a hotspot's commits touch a few rows of several tables; at 1 KB a page
            // an SD card is written a quarter of what 4 KB pages cost. Set before WAL, which
            // fixes it; a database made with other pages keeps them.
            try db.execute("PRAGMA page_size = \(pageSize)")
        }
        try db.execute("PRAGMA journal_mode = WAL")
        // Nothing leaves the hotspot before it is on stable storage: a commit returns once the
        // WAL is synced, and the outbox publishes only committed rows. With NORMAL, a power cut
        // takes back the last commits, so an uplink already published could vanish from the
        // ledger and its seq be charged again for another frame, a signed receipt be issued
        // twice with other contents (scripts/power-cut-test finds both). Frames that come
        // together are one transaction (group commit): the sync is paid once per batch.
        try db.execute("PRAGMA synchronous = FULL")
        // A checkpoint every 4 MB of WAL, whatever the page size: each copies the pages the WAL
        // holds to the database once, however often they were rewritten, and syncs.
        let pages = try db.query("PRAGMA page_size").first?.first?.integer ?? Int64(pageSize)
        try db.execute("PRAGMA wal_autocheckpoint = \(4 * 1024 * 1024 / max(pages, 512))")
        try db.execute("PRAGMA foreign_keys = ON")
        for (index, migration) in migrations.enumerated() where Int64(index + 1) > version {
            try db.transaction { () throws(StoreError) in
                try db.execute(migration)
                try db.execute("PRAGMA user_version = \(index + 1)")
            }
        }
    }

    /// One entry a schema version; a migration is never edited once released.
    static let migrations: [String] = [
        """
        CREATE TABLE accounts (
            owner TEXT PRIMARY KEY,
            balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
            chain BLOB NOT NULL,
            charged INTEGER NOT NULL DEFAULT 0,
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE pairings (
            dev_addr INTEGER PRIMARY KEY,
            dev_eui INTEGER UNIQUE,
            owner TEXT NOT NULL,
            nwk_s_key BLOB,
            last_fcnt INTEGER,
            paired_at INTEGER NOT NULL
        );
        CREATE TABLE nonces (
            nonce BLOB PRIMARY KEY,
            command TEXT NOT NULL,
            applied_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        );
        CREATE TABLE charges (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            owner TEXT NOT NULL,
            dev_addr INTEGER,
            dev_eui INTEGER,
            size INTEGER NOT NULL,
            credits INTEGER NOT NULL,
            payload_hash BLOB NOT NULL,
            chain BLOB NOT NULL,
            received_at INTEGER NOT NULL
        );
        CREATE INDEX charges_by_owner ON charges (owner, seq);
        CREATE TABLE receipts (
            owner TEXT PRIMARY KEY,
            last_seq INTEGER NOT NULL,
            chain BLOB NOT NULL,
            period_end INTEGER NOT NULL
        );
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            topic TEXT NOT NULL,
            message_id TEXT NOT NULL,
            payload BLOB NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX outbox_by_kind ON outbox (kind, id);
        """,
        """
        CREATE TABLE join_nonces (
            dev_eui INTEGER NOT NULL,
            dev_nonce INTEGER NOT NULL,
            seen_at INTEGER NOT NULL,
            PRIMARY KEY (dev_eui, dev_nonce)
        );
        """,
        // Each account keeps the running totals of its charges since its last receipt, so that
        // issuing receipts reads one row per owner instead of every charge ever made.
        """
        ALTER TABLE accounts ADD COLUMN period_uplinks INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE accounts ADD COLUMN period_bytes INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE accounts ADD COLUMN period_credits INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE accounts ADD COLUMN period_first_seq INTEGER;
        ALTER TABLE accounts ADD COLUMN period_last_seq INTEGER;
        ALTER TABLE accounts ADD COLUMN period_first_at INTEGER;
        UPDATE accounts SET
            period_uplinks = p.uplinks, period_bytes = p.bytes, period_credits = p.credits,
            period_first_seq = p.first_seq, period_last_seq = p.last_seq, period_first_at = p.first_at
        FROM (
            SELECT c.owner AS owner, COUNT(*) AS uplinks, SUM(c.size) AS bytes, SUM(c.credits) AS credits,
                   MIN(c.seq) AS first_seq, MAX(c.seq) AS last_seq, MIN(c.received_at) AS first_at
            FROM charges c LEFT JOIN receipts r ON r.owner = c.owner
            WHERE c.seq > COALESCE(r.last_seq, 0)
            GROUP BY c.owner
        ) AS p
        WHERE accounts.owner = p.owner;
        """,
        // Join requests are no longer judged by DevNonce (the network server does that, and a
        // forged join could lock a sensor out): the history, which only grew, goes.
        "DROP TABLE IF EXISTS join_nonces;",
    ]

    public func journalMode() throws(StoreError) -> String {
        try db.query("PRAGMA journal_mode").first?.first?.text ?? ""
    }

    /// SQLite's `synchronous` setting: 2 is FULL, a sync at every commit.
    public func synchronousSetting() throws(StoreError) -> Int64 {
        try db.query("PRAGMA synchronous").first?.first?.integer ?? -1
    }

    public func userVersion() throws(StoreError) -> Int64 {
        try db.query("PRAGMA user_version").first?.first?.integer ?? 0
    }

    // MARK: Pairings and accounts

    public func pairing(devAddr: UInt32) throws(StoreError) -> Pairing? {
        try db.query(
            "SELECT dev_addr, dev_eui, owner, nwk_s_key, last_fcnt, paired_at FROM pairings WHERE dev_addr = ?",
            [.integer(Int64(devAddr))]
        ).first.map(Self.pairing)
    }

    public func pairing(devEUI: UInt64) throws(StoreError) -> Pairing? {
        try db.query(
            "SELECT dev_addr, dev_eui, owner, nwk_s_key, last_fcnt, paired_at FROM pairings WHERE dev_eui = ?",
            [.integer(Int64(bitPattern: devEUI))]
        ).first.map(Self.pairing)
    }

    /// The pairings of these DevAddrs and DevEUIs (those that exist), in one visit to the store.
    public func pairings(devAddrs: Set<UInt32>, devEUIs: Set<UInt64>) throws(StoreError) -> (
        byDevAddr: [UInt32: Pairing], byDevEUI: [UInt64: Pairing]
    ) {
        var byDevAddr: [UInt32: Pairing] = [:]
        var byDevEUI: [UInt64: Pairing] = [:]
        for devAddr in devAddrs {
            if let pairing = try pairing(devAddr: devAddr) { byDevAddr[devAddr] = pairing }
        }
        for devEUI in devEUIs {
            if let pairing = try pairing(devEUI: devEUI) { byDevEUI[devEUI] = pairing }
        }
        return (byDevAddr, byDevEUI)
    }

    /// The pairings of these DevAddrs and DevEUIs and the ledger of their owners, in one visit
    /// to the store: what a batch of frames is planned against.
    public func lookUp(devAddrs: Set<UInt32>, devEUIs: Set<UInt64>) throws(StoreError) -> (
        byDevAddr: [UInt32: Pairing], byDevEUI: [UInt64: Pairing], ledger: Ledger
    ) {
        let (byDevAddr, byDevEUI) = try pairings(devAddrs: devAddrs, devEUIs: devEUIs)
        let owners = Set(byDevAddr.values.map(\.owner)).union(byDevEUI.values.map(\.owner))
        var ledger = try ledger(owners: owners, devAddrs: [])
        for (devAddr, pairing) in byDevAddr {
            if let fCnt = pairing.lastFCnt { ledger.frameCounters[devAddr] = fCnt }
        }
        return (byDevAddr, byDevEUI, ledger)
    }

    /// The ledger as it stands for these owners and DevAddrs.
    public func ledger(owners: Set<String>, devAddrs: Set<UInt32>) throws(StoreError) -> Ledger {
        // AUTOINCREMENT gives the larger of the last number handed out and the largest in use, plus one.
        let next =
            try db.query(
                """
                SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'charges'), 0), \
                COALESCE((SELECT MAX(seq) FROM charges), 0)) + 1
                """
            ).first?[0].integer ?? 1
        var ledger = Ledger(nextSeq: next)
        for owner in owners {
            if let balance = try db.query("SELECT balance FROM accounts WHERE owner = ?", [.text(owner)]).first?[0]
                .integer
            {
                ledger.balances[owner] = balance
            }
        }
        for devAddr in devAddrs {
            if let fCnt = try pairing(devAddr: devAddr)?.lastFCnt { ledger.frameCounters[devAddr] = fCnt }
        }
        return ledger
    }

    public func pairings() throws(StoreError) -> [Pairing] {
        try db.query(
            "SELECT dev_addr, dev_eui, owner, nwk_s_key, last_fcnt, paired_at FROM pairings ORDER BY owner, dev_addr"
        ).map(Self.pairing)
    }

    private static func pairing(_ row: [SQLValue]) -> Pairing {
        Pairing(
            devAddr: UInt32(truncatingIfNeeded: row[0].integer ?? 0),
            devEUI: row[1].integer.map { UInt64(bitPattern: $0) },
            owner: row[2].text ?? "",
            nwkSKey: row[3].blob,
            lastFCnt: row[4].integer.map { UInt32(truncatingIfNeeded: $0) },
            pairedAt: row[5].integer ?? 0
        )
    }

    public func account(owner: String) throws(StoreError) -> Account? {
        try db.query("SELECT owner, balance, chain, charged FROM accounts WHERE owner = ?", [.text(owner)]).first.map(
            Self.account)
    }

    public func accounts() throws(StoreError) -> [Account] {
        try db.query("SELECT owner, balance, chain, charged FROM accounts ORDER BY owner").map(Self.account)
    }

    private static func account(_ row: [SQLValue]) -> Account {
        Account(
            owner: row[0].text ?? "", balance: row[1].integer ?? 0, chain: row[2].blob ?? [],
            charged: row[3].integer ?? 0)
    }

    private func ensureAccount(_ owner: String, at time: Int64) throws(StoreError) {
        try db.query(
            "INSERT OR IGNORE INTO accounts (owner, balance, chain, charged, updated_at) VALUES (?, 0, ?, 0, ?)",
            [.text(owner), .blob([UInt8](repeating: 0, count: 32)), .integer(time)])
    }

    // MARK: Commands

    /// Applies a pairing under a command nonce: a nonce seen before changes nothing.
    /// Pairing again replaces the previous pairing of that DevAddr. Its frame counter is
    /// forgotten only when the NwkSKey changes: under the same key, frames recorded before
    /// would pass the MIC check again, and the counter is what refuses them.
    public func pair(_ pairing: Pairing, nonce: [UInt8], expiresAt: Int64, then messages: [NewMessage] = [])
        throws(StoreError) -> CommandApplication
    {
        try underNonce(nonce, command: "pair", expiresAt: expiresAt, at: pairing.pairedAt, messages: messages) {
            () throws(StoreError) in
            try ensureAccount(pairing.owner, at: pairing.pairedAt)
            if let devEUI = pairing.devEUI {
                try db.query(
                    "DELETE FROM pairings WHERE dev_eui = ? AND dev_addr != ?",
                    [.integer(Int64(bitPattern: devEUI)), .integer(Int64(pairing.devAddr))])
            }
            // SQLite evaluates every SET expression on the row as it was, so the CASE sees the
            // previous key.
            try db.query(
                """
                INSERT INTO pairings (dev_addr, dev_eui, owner, nwk_s_key, last_fcnt, paired_at)
                VALUES (?, ?, ?, ?, NULL, ?)
                ON CONFLICT (dev_addr) DO UPDATE SET
                    dev_eui = excluded.dev_eui, owner = excluded.owner, nwk_s_key = excluded.nwk_s_key,
                    last_fcnt = CASE WHEN pairings.nwk_s_key IS excluded.nwk_s_key
                        THEN pairings.last_fcnt ELSE NULL END,
                    paired_at = excluded.paired_at
                """,
                [
                    .integer(Int64(pairing.devAddr)), pairing.devEUI.map { .integer(Int64(bitPattern: $0)) } ?? .null,
                    .text(pairing.owner),
                    pairing.nwkSKey.map { .blob($0) } ?? .null, .integer(pairing.pairedAt),
                ]
            )
            return .applied
        }
    }

    public func unpair(
        devAddr: UInt32, nonce: [UInt8], expiresAt: Int64, at time: Int64, then messages: [NewMessage] = []
    ) throws(StoreError) -> CommandApplication {
        try underNonce(nonce, command: "unpair", expiresAt: expiresAt, at: time, messages: messages) {
            () throws(StoreError) in
            try db.query("DELETE FROM pairings WHERE dev_addr = ?", [.integer(Int64(devAddr))])
            return db.changes > 0 ? .applied : .notPaired
        }
    }

    /// The most credits an account holds. SQLite turns an integer sum past Int64.max into a
    /// REAL, which reads back as no integer at all; half of it leaves room for any one credit.
    public static let maximumBalance = Int64.max / 2

    /// Adds credits to an owner's account (creating it); refused (`.balanceLimit`, nothing
    /// changed but the nonce recorded) past `maximumBalance`.
    public func credit(
        owner: String, amount: Int64, nonce: [UInt8], expiresAt: Int64, at time: Int64, then messages: [NewMessage] = []
    ) throws(StoreError) -> CommandApplication {
        try underNonce(nonce, command: "credit", expiresAt: expiresAt, at: time, messages: messages) {
            () throws(StoreError) in
            let balance =
                try db.query("SELECT balance FROM accounts WHERE owner = ?", [.text(owner)]).first?[0].integer ?? 0
            let (sum, overflow) = balance.addingReportingOverflow(amount)
            guard amount >= 0, !overflow, sum <= Self.maximumBalance else { return .balanceLimit }
            try ensureAccount(owner, at: time)
            try db.query(
                "UPDATE accounts SET balance = balance + ?, updated_at = ? WHERE owner = ?",
                [.integer(amount), .integer(time), .text(owner)])
            return .applied
        }
    }

    /// Records a nonce for a command that changes nothing here (entropy), so it is not replayed.
    public func recordNonce(_ nonce: [UInt8], command: String, expiresAt: Int64, at time: Int64) throws(StoreError)
        -> CommandApplication
    {
        try underNonce(nonce, command: command, expiresAt: expiresAt, at: time, messages: []) { () throws(StoreError) in
            .applied
        }
    }

    private func underNonce(
        _ nonce: [UInt8], command: String, expiresAt: Int64, at time: Int64, messages: [NewMessage],
        _ body: () throws(StoreError) -> CommandApplication
    ) throws(StoreError) -> CommandApplication {
        try write { () throws(StoreError) in
            if try !db.query("SELECT 1 FROM nonces WHERE nonce = ?", [.blob(nonce)]).isEmpty {
                return .replayed
            }
            if let floor = try timeFloor(), expiresAt <= floor { return .outdated }
            try db.query(
                "INSERT INTO nonces (nonce, command, applied_at, expires_at) VALUES (?, ?, ?, ?)",
                [.blob(nonce), .text(command), .integer(time), .integer(expiresAt)])
            let outcome = try body()
            for message in messages { try insert(message, at: time) }
            return outcome
        }
    }

    /// A moment (Unix seconds) the real time is known to have passed, whatever this machine's
    /// clock says: a command lives a week at most, so the authority signed the latest-expiring
    /// command applied no earlier than a week before its expiry. Nil before any command.
    public func commandTimeFloor() throws(StoreError) -> Int64? {
        try timeFloor()
    }

    private func timeFloor() throws(StoreError) -> Int64? {
        try db.query("SELECT MAX(expires_at) FROM nonces").first?.first?.integer.map {
            $0 - Self.commandLifetimeSeconds
        }
    }

    /// The longest a signed command lives (`CommandAuthority.maximumLifetimeSeconds`).
    public static let commandLifetimeSeconds: Int64 = 7 * 86_400

    /// Forgets the nonces of commands that expired before `commandTimeFloor`: those are refused
    /// as outdated, so their nonces are no longer needed. The wall clock plays no part: a clock
    /// pushed forward (spoofed NTP) cannot make the store forget a nonce whose command could
    /// still be valid.
    public func pruneNonces() throws(StoreError) -> Int {
        guard let floor = try timeFloor() else { return 0 }
        try db.query("DELETE FROM nonces WHERE expires_at <= ?", [.integer(floor)])
        return db.changes
    }

    // MARK: Charging

    /// What one transaction records, in the order the frames came: a message for the outbox,
    /// or an uplink's charge (with the messages it causes).
    public enum Entry: Sendable {
        case message(NewMessage)
        case charge(Charge)
    }

    /// Group commit in arrival order: the entries' charges and messages in one transaction,
    /// the outbox rows in the entries' order (an unpaired sensor's uplink, a refusal and a
    /// charged uplink stay where they came). Each charge is checked against the ledger as it
    /// stands after the ones before it: its sequence number, its owner's balance, its frame
    /// counter. If one was planned against a ledger that has moved since (a top-up, a charge
    /// made elsewhere), the store throws `.outdated`; if anything fails, the transaction is
    /// rolled back whole: nothing is debited and nothing queued.
    public func record(_ entries: [Entry], at time: Int64) throws(StoreError) {
        guard !entries.isEmpty else { return }
        try write { () throws(StoreError) in
            for entry in entries {
                switch entry {
                case .message(let message): try insert(message, at: time)
                case .charge(let charge): try charged(charge)
                }
            }
        }
    }

    /// Inside a transaction: one charge, as planned.
    private func charged(_ charge: Charge) throws(StoreError) {
        let account = try db.query("SELECT balance, chain FROM accounts WHERE owner = ?", [.text(charge.owner)]).first
        let balance = account?[0].integer ?? 0
        // Credits only ever add: a top-up since the plan leaves it good (the top-up counts as
        // coming after the charge); a charge made elsewhere may not.
        guard balance >= charge.balanceBefore else {
            let (planned, seq) = (charge.balanceBefore, charge.seq)
            let owner = charge.owner
            throw StoreError(.outdated, "\(owner) has \(balance) DC, below the \(planned) charge \(seq) counted on")
        }
        guard charge.credits >= 0, charge.balanceBefore >= charge.credits else {
            throw StoreError(
                .constraint, "charge \(charge.seq): \(charge.credits) DC needed, \(charge.balanceBefore) DC planned")
        }
        if account == nil { try ensureAccount(charge.owner, at: charge.receivedAt) }
        if let devAddr = charge.devAddr, let fCnt = charge.fCnt {
            try db.query(
                "UPDATE pairings SET last_fcnt = ? WHERE dev_addr = ? AND (last_fcnt IS NULL OR last_fcnt < ?)",
                [.integer(Int64(fCnt)), .integer(Int64(devAddr)), .integer(Int64(fCnt))])
            if db.changes == 0,
                try !db.query("SELECT 1 FROM pairings WHERE dev_addr = ?", [.integer(Int64(devAddr))]).isEmpty
            {
                throw StoreError(.outdated, "charge \(charge.seq): FCnt \(fCnt) was overtaken by another frame")
            }
        }
        let payloadHash = SHA256.hash(charge.phyPayload)
        let previous = account?[1].blob ?? [UInt8](repeating: 0, count: 32)
        let chain = Self.nextChain(
            previous: previous, seq: charge.seq, credits: charge.credits, payloadHash: payloadHash)
        try db.query(
            """
            INSERT INTO charges (owner, dev_addr, dev_eui, size, credits, payload_hash, chain, received_at) VALUES \
            (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(charge.owner), charge.devAddr.map { .integer(Int64($0)) } ?? .null,
                charge.devEUI.map { .integer(Int64(bitPattern: $0)) } ?? .null,
                .integer(Int64(charge.phyPayload.count)), .integer(charge.credits), .blob(payloadHash), .blob(chain),
                .integer(charge.receivedAt),
            ]
        )
        guard db.lastInsertRowID == charge.seq else {
            throw StoreError(.outdated, "the next charge is \(db.lastInsertRowID), not \(charge.seq)")
        }
        try db.query(
            """
            UPDATE accounts SET balance = ?, chain = ?, charged = charged + ?, updated_at = ?,
                period_uplinks = period_uplinks + 1, period_bytes = period_bytes + ?,
                period_credits = period_credits + ?, period_first_seq = COALESCE(period_first_seq, ?),
                period_last_seq = ?, period_first_at = COALESCE(period_first_at, ?)
            WHERE owner = ?
            """,
            [
                .integer(balance - charge.credits), .blob(chain), .integer(charge.credits), .integer(charge.receivedAt),
                .integer(Int64(charge.phyPayload.count)), .integer(charge.credits), .integer(charge.seq),
                .integer(charge.seq), .integer(charge.receivedAt),
                .text(charge.owner),
            ]
        )
        for message in charge.messages { try insert(message, at: charge.receivedAt) }
    }

    /// The owner's chain of charged uplinks: chain = SHA-256(previous chain ‖ seq ‖ credits ‖
    /// SHA-256(PHYPayload)), seq and credits as 8-byte big-endian integers. An owner who keeps
    /// the forwarded uplinks (each carries its seq and credits) can recompute it.
    public static func nextChain(previous: [UInt8], seq: Int64, credits: Int64, payloadHash: [UInt8]) -> [UInt8] {
        SHA256.hash(previous + bigEndian(seq) + bigEndian(credits) + payloadHash)
    }

    static func bigEndian(_ value: Int64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
    }

    // MARK: Receipts

    /// For every owner charged since their last receipt: the period summed as of `time`. Reads
    /// only: the receipts are made (signed, which on a secure element takes a while) outside
    /// the store, then handed to `recordReceipts`.
    public func receiptSummaries(at time: Int64) throws(StoreError) -> [ReceiptSummary] {
        // One row per owner charged since its last receipt: the running totals kept by each
        // charge, not a scan of the charges.
        let rows = try db.query(
            """
            SELECT a.owner, a.period_uplinks, a.period_bytes, a.period_credits, a.period_first_seq,
                a.period_last_seq,
                   a.period_first_at, COALESCE(r.chain, zeroblob(32)), COALESCE(r.period_end, 0), a.chain
            FROM accounts a LEFT JOIN receipts r ON r.owner = a.owner
            WHERE a.period_uplinks > 0
            ORDER BY a.owner
            """)
        return rows.map { row in
            let previousEnd = row[8].integer ?? 0
            // The account's chain is the chain of its latest charge.
            return ReceiptSummary(
                owner: row[0].text ?? "", periodStart: previousEnd > 0 ? previousEnd : (row[6].integer ?? time),
                periodEnd: time,
                uplinks: row[1].integer ?? 0, bytes: row[2].integer ?? 0, credits: row[3].integer ?? 0,
                firstSeq: row[4].integer ?? 0, lastSeq: row[5].integer ?? 0, previousChain: row[7].blob ?? [],
                chain: row[9].blob ?? [])
        }
    }

    /// Records receipts made from `receiptSummaries`: their messages go into the outbox and
    /// each period is marked receipted, in one transaction. A summary whose owner was charged
    /// (or receipted) since it was read no longer sums the period, and is left out: the next
    /// round receipts that owner. Returns the summaries recorded.
    public func recordReceipts(_ receipts: [(summary: ReceiptSummary, messages: [NewMessage])], at time: Int64)
        throws(StoreError) -> [ReceiptSummary]
    {
        try write { () throws(StoreError) in
            var recorded: [ReceiptSummary] = []
            for (summary, messages) in receipts {
                let current = try db.query(
                    "SELECT period_uplinks, COALESCE(period_last_seq, 0) FROM accounts WHERE owner = ?",
                    [.text(summary.owner)])
                guard let row = current.first, row[0].integer == summary.uplinks, row[1].integer == summary.lastSeq
                else { continue }
                for message in messages { try insert(message, at: time) }
                try db.query(
                    "INSERT OR REPLACE INTO receipts (owner, last_seq, chain, period_end) VALUES (?, ?, ?, ?)",
                    [.text(summary.owner), .integer(summary.lastSeq), .blob(summary.chain), .integer(time)]
                )
                try db.query(
                    """
                    UPDATE accounts SET period_uplinks = 0, period_bytes = 0, period_credits = 0,
                        period_first_seq = NULL, period_last_seq = NULL, period_first_at = NULL
                    WHERE owner = ?
                    """,
                    [.text(summary.owner)]
                )
                recorded.append(summary)
            }
            return recorded
        }
    }

    /// `receiptSummaries`, `build` for each, then `recordReceipts`: for callers whose `build`
    /// is quick. `build` may throw (a receipt that cannot be signed now): nothing is issued
    /// then, and the period goes on to the next attempt.
    public func issueReceipts(
        at time: Int64, build: @Sendable (ReceiptSummary) throws(StoreError) -> [NewMessage]
    ) throws(StoreError) -> [ReceiptSummary] {
        let summaries = try receiptSummaries(at: time)
        var receipts: [(summary: ReceiptSummary, messages: [NewMessage])] = []
        for summary in summaries { receipts.append((summary, try build(summary))) }
        return try recordReceipts(receipts, at: time)
    }

    // MARK: Outbox

    /// Puts messages into the outbox on their own (reports, rejections).
    public func enqueue(_ messages: [NewMessage], at time: Int64) throws(StoreError) {
        try write { () throws(StoreError) in
            for message in messages { try insert(message, at: time) }
        }
    }

    /// Inside a transaction: adds a row, and counts it once the transaction commits.
    private func insert(_ message: NewMessage, at time: Int64) throws(StoreError) {
        try db.query(
            "INSERT INTO outbox (kind, topic, message_id, payload, created_at) VALUES (?, ?, ?, ?, ?)",
            [
                .text(message.kind.rawValue), .text(message.topic), .text(message.messageID), .blob(message.payload),
                .integer(time),
            ]
        )
        uncommittedInserts += 1
        if message.kind != .uplink { uncommittedKinds.insert(message.kind) }
    }

    private var uncommittedInserts = 0
    /// The kinds other than uplinks the transaction added rows of.
    private var uncommittedKinds: Set<OutboxMessage.Kind> = []

    /// After a transaction: counts its rows, enforces the caps, wakes the publisher.
    private func committed(_ success: Bool) {
        defer {
            uncommittedInserts = 0
            uncommittedKinds.removeAll(keepingCapacity: true)
        }
        guard success, uncommittedInserts > 0 else { return }
        depth += uncommittedInserts
        // Each kind within its own cap (counted through the (kind, id) index: a few thousand
        // rows at most), so that what comes from outside cannot grow the outbox without end.
        for kind in uncommittedKinds {
            guard let limit = kind.limit,
                let count = try? db.query("SELECT COUNT(*) FROM outbox WHERE kind = ?", [.text(kind.rawValue)]).first?
                    .first?.integer,
                count > Int64(limit)
            else { continue }
            if (try? db.query(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind = ? ORDER BY id LIMIT ?)",
                [.text(kind.rawValue), .integer(count - Int64(limit))])) != nil
            {
                droppedAtKindCap[kind, default: 0] += db.changes
                depth -= db.changes
            }
        }
        // Uplinks within `outboxLimit`, counted apart from the other kinds: those cannot push
        // an uplink out.
        if depth > outboxLimit {
            let others = OutboxMessage.Kind.allCases.filter { $0 != .uplink }.map { "'\($0.rawValue)'" }.joined(
                separator: ", ")
            let otherRows = Int(
                (try? db.query("SELECT COUNT(*) FROM outbox WHERE kind IN (\(others))").first?.first?.integer) ?? 0)
            let excess = depth - otherRows - outboxLimit
            if excess > 0,
                (try? db.query(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind = 'uplink' ORDER BY id LIMIT ?)",
                    [.integer(Int64(excess))])) != nil
            {
                droppedAtCap += db.changes
                depth -= db.changes
            }
        }
        for watcher in outboxWatchers.values { watcher.yield() }
    }

    /// A signal each time messages are added to the outbox (coalesced: one pending signal at
    /// most), for one consumer; every call makes a new stream.
    public func outboxChanges() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = nextWatcher
        nextWatcher += 1
        outboxWatchers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.removeWatcher(id) }
        }
        return stream
    }

    private func removeWatcher(_ id: Int) {
        outboxWatchers[id] = nil
    }

    /// Runs a write transaction and keeps the outbox's bookkeeping in step with it.
    private func write<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        uncommittedInserts = 0
        do {
            let result = try db.transaction(body)
            committed(true)
            return result
        } catch {
            committed(false)
            throw error
        }
    }

    /// Messages in outbox order, after `id`.
    public func outbox(after id: Int64 = 0, limit: Int = 100) throws(StoreError) -> [OutboxMessage] {
        try db.query(
            "SELECT id, kind, topic, message_id, payload, created_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            [.integer(id), .integer(Int64(limit))]
        ).map { row in
            OutboxMessage(
                id: row[0].integer ?? 0, kind: OutboxMessage.Kind(rawValue: row[1].text ?? "") ?? .other,
                topic: row[2].text ?? "", messageID: row[3].text ?? "", payload: row[4].blob ?? [],
                createdAt: row[5].integer ?? 0
            )
        }
    }

    /// Removes messages the broker has acknowledged.
    public func acknowledge(_ ids: [Int64]) throws(StoreError) {
        guard !ids.isEmpty else { return }
        // PUBACKs come nearly in order: runs of consecutive ids go in one statement each.
        let sorted = ids.sorted()
        var runs: [(Int64, Int64)] = []
        for id in sorted {
            if let last = runs.last, id <= last.1 + 1 {
                runs[runs.count - 1].1 = max(last.1, id)
            } else {
                runs.append((id, id))
            }
        }
        let removed = try db.transaction { () throws(StoreError) -> Int in
            var removed = 0
            for (first, last) in runs {
                try db.query("DELETE FROM outbox WHERE id BETWEEN ? AND ?", [.integer(first), .integer(last)])
                removed += db.changes
            }
            return removed
        }
        depth -= removed
    }

    /// Messages waiting in the outbox.
    public func outboxDepth() -> Int {
        depth
    }

    /// When the oldest message waiting in the outbox was put there (wall-clock nanoseconds).
    public func oldestOutboxMessageTime() throws(StoreError) -> Int64? {
        guard depth > 0 else { return nil }
        return try db.query("SELECT created_at FROM outbox ORDER BY id LIMIT 1", []).first?[0].integer
    }

    /// Charges by sequence number, for audits and tests.
    public func charges(owner: String) throws(StoreError) -> [(
        seq: Int64, credits: Int64, payloadHash: [UInt8], chain: [UInt8]
    )] {
        try db.query(
            "SELECT seq, credits, payload_hash, chain FROM charges WHERE owner = ? ORDER BY seq", [.text(owner)]
        ).map {
            ($0[0].integer ?? 0, $0[1].integer ?? 0, $0[2].blob ?? [], $0[3].blob ?? [])
        }
    }
}
