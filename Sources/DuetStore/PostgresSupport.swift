public import DuetCore

/// Whether this build has the PostgreSQL backend: the package trait `Postgres`, off by default so a
/// first build skips postgres-nio and its TLS stack.
public enum PostgresSupport {
    #if Postgres
    public static let isBuiltIn = true
    #else
    public static let isBuiltIn = false
    #endif

    /// The refusal for a PostgreSQL URL in a build without the backend. No part of the URL is echoed:
    /// even a malformed one may hold a user name or password.
    public static func missing(for url: String) -> DuetError {
        .refused("this duet was built without PostgreSQL, so it cannot open a PostgreSQL registry; "
            + "build it with `swift build -c release --traits Postgres` (or use the home's SQLite files)")
    }
}
