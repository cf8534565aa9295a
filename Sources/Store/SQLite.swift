import CSQLite

/// Why the store failed, with the database's path.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The file is not a SQLite database, or is damaged.
        case corrupt
        /// Written by a newer hotspotd.
        case tooNew
        /// The disk is full.
        case full
        /// Read-only file or directory, or no permission.
        case readOnly
        /// A constraint refused the change (a negative balance …).
        case constraint
        /// A change planned against what the store held is refused, as what it held has changed
        /// since; nothing was changed. Read again and plan again.
        case outdated
        case other
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// A value bound to or read from a SQL statement.
public enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case text(String)
    case blob([UInt8])

    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    public var text: String? {
        if case .text(let value) = self { return value }
        return nil
    }

    public var blob: [UInt8]? {
        switch self {
        case .blob(let value): value
        case .null: nil
        case .text(let value): Array(value.utf8)
        case .integer: nil
        }
    }
}

/// A connection to one SQLite database, used from one thread at a time (the store's).
final class SQLiteConnection {
    private var handle: OpaquePointer?
    let path: String
    private var statements: [String: OpaquePointer] = [:]

    init(path: String, readOnly: Bool = false) throws(StoreError) {
        self.path = path
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let code = sqlite3_open_v2(path, &db, flags, nil)
        handle = db
        guard code == SQLITE_OK else {
            let error = Self.error(code: code, db: db, path: path, context: "open")
            sqlite3_close_v2(db)
            handle = nil
            throw error
        }
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 5_000)
        // SQLite quietly opens a file it may not write read-only; every write would then fail.
        if !readOnly && sqlite3_db_readonly(db, "main") == 1 {
            sqlite3_close_v2(db)
            handle = nil
            throw StoreError(
                .readOnly,
                """
                \(path) is read-only: hotspotd must be able to write its store (the file's owner and mode, and a \
                file system mounted read-write)
                """
            )
        }
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(handle)
    }

    /// Runs statements without results (schema, pragmas).
    func execute(_ sql: String) throws(StoreError) {
        var message: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &message)
        sqlite3_free(message)
        guard code == SQLITE_OK else { throw Self.error(code: code, db: handle, path: path, context: sql) }
    }

    /// Runs one statement with parameters and returns its rows.
    @discardableResult
    func query(_ sql: String, _ parameters: [SQLValue] = []) throws(StoreError) -> [[SQLValue]] {
        let statement = try prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, parameter) in parameters.enumerated() {
            let position = Int32(index + 1)
            let code: Int32
            switch parameter {
            case .null: code = sqlite3_bind_null(statement, position)
            case .integer(let value): code = sqlite3_bind_int64(statement, position, value)
            case .text(let value):
                // With its byte count, so a NUL inside the text does not cut it short.
                let length = Int32(value.utf8.count)
                code = value.utf8CString.withUnsafeBufferPointer {
                    sqlite3_bind_text(statement, position, $0.baseAddress, length, hs_sqlite_transient())
                }
            case .blob(let value):
                code =
                    value.isEmpty
                    ? sqlite3_bind_zeroblob(statement, position, 0)
                    : value.withUnsafeBytes {
                        sqlite3_bind_blob(statement, position, $0.baseAddress, Int32($0.count), hs_sqlite_transient())
                    }
            }
            guard code == SQLITE_OK else { throw Self.error(code: code, db: handle, path: path, context: sql) }
        }
        var rows: [[SQLValue]] = []
        while true {
            let code = sqlite3_step(statement)
            if code == SQLITE_DONE { break }
            guard code == SQLITE_ROW else { throw Self.error(code: code, db: handle, path: path, context: sql) }
            let columns = sqlite3_column_count(statement)
            rows.append(
                (0..<columns).map { column in
                    switch sqlite3_column_type(statement, column) {
                    case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, column))
                    case SQLITE_TEXT: return .text(String(cString: sqlite3_column_text(statement, column)))
                    case SQLITE_BLOB:
                        let count = Int(sqlite3_column_bytes(statement, column))
                        guard count > 0, let pointer = sqlite3_column_blob(statement, column) else { return .blob([]) }
                        return .blob(Array(UnsafeRawBufferPointer(start: pointer, count: count)))
                    default: return .null
                    }
                })
        }
        return rows
    }

    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    var changes: Int { Int(sqlite3_changes(handle)) }

    /// Runs `body` in one transaction: all of it is stored, or none.
    func transaction<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    private func prepared(_ sql: String) throws(StoreError) -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard code == SQLITE_OK, let statement else {
            throw Self.error(code: code, db: handle, path: path, context: sql)
        }
        statements[sql] = statement
        return statement
    }

    static func error(code: Int32, db: OpaquePointer?, path: String, context: String) -> StoreError {
        let detail = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
        switch code & 0xFF {
        case SQLITE_NOTADB, SQLITE_CORRUPT:
            return StoreError(
                .corrupt,
                """
                \(path) is not a hotspotd database or is damaged (\(detail)); it is left as it is: move it aside \
                to start afresh, or restore a backup
                """
            )
        case SQLITE_FULL:
            return StoreError(.full, "\(path): the disk is full (\(detail))")
        case SQLITE_READONLY, SQLITE_PERM, SQLITE_CANTOPEN:
            return StoreError(
                .readOnly,
                "\(path) cannot be written (\(detail)): check the file's and the directory's permissions and free space"
            )
        case SQLITE_CONSTRAINT:
            return StoreError(.constraint, "\(path): \(detail)")
        default:
            return StoreError(.other, "\(path): \(detail) (in: \(context.prefix(80)))")
        }
    }
}
