import CSQLite
import Clocks

/// Sets PRAGMA user_version directly, as a newer hotspotd would have left it.
func bumpUserVersion(path: String, to version: Int) throws {
    var db: OpaquePointer?
    guard sqlite3_open(path, &db) == SQLITE_OK else { throw SetupError() }
    defer { sqlite3_close(db) }
    guard sqlite3_exec(db, "PRAGMA user_version = \(version)", nil, nil, nil) == SQLITE_OK else { throw SetupError() }
}

/// An empty SQLite database with no hotspotd schema: version 0.
func createVersionZero(path: String) throws {
    var db: OpaquePointer?
    guard sqlite3_open(path, &db) == SQLITE_OK else { throw SetupError() }
    defer { sqlite3_close(db) }
    guard sqlite3_exec(db, "CREATE TABLE unrelated (x INTEGER)", nil, nil, nil) == SQLITE_OK else { throw SetupError() }
}

struct SetupError: Error {}
