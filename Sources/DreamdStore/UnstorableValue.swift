import PostgresNIO

/// Tells a value PostgreSQL refused to store (a NUL in `text` or `jsonb`, a character the encoding
/// cannot hold, a value past a size or nesting limit) from a fault of dreamd's own.
///
/// The API refuses such input before it reaches the database (422 naming the field); this is the safety
/// net for anything that slips past, so the answer is still a 4xx, never a 500.
public enum UnstorableValue {
    /// SQLSTATEs of values the server cannot store: untranslatable character (22P05), character not in
    /// repertoire (22021), invalid text representation (22P02), invalid escape (22025), string too long
    /// (22001), program limit (54000), stack depth (54001).
    static let states: Set<String> = ["22P05", "22021", "22P02", "22025", "22001", "54000", "54001"]

    /// The SQLSTATE when `error` is the server refusing a value, else `nil`.
    public static func sqlState(of error: any Error) -> String? {
        guard let error = error as? PSQLError, error.code == .server,
              let state = error.serverInfo?[.sqlState], states.contains(state) else { return nil }
        return state
    }
}
