#if Postgres
import DuetCore
import DuetStore
import DuetStoreTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// TLS to PostgreSQL as the URL asks, with libpq's sslmode: verify-full connects over TLS to a
/// server whose certificate chains to the given CA and names the host, and refuses anything less.
@Suite struct PostgresTLSTests {
    /// A server from `scripts/start-postgres.sh --tls`: verify-full against its throwaway CA.
    static var tlsURL: String? { ProcessInfo.processInfo.environment["DUET_TEST_POSTGRES_TLS_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    static func url(_ base: String, host: String? = nil, mode: String? = nil, rootCertificate: String? = nil) -> String {
        var components = URLComponents(string: base)!
        if let host { components.host = host }
        var items = components.queryItems ?? []
        if let mode { items = items.filter { $0.name != "sslmode" } + [URLQueryItem(name: "sslmode", value: mode)] }
        if let rootCertificate { items = items.filter { $0.name != "sslrootcert" } + [URLQueryItem(name: "sslrootcert", value: rootCertificate)] }
        components.queryItems = items
        return components.string!
    }

    /// Whether the session is encrypted, as the server itself reports it.
    /// `patience` bounds a lease that never comes (a refused handshake may surface that way). CI
    /// missed 30 s for a connection that should succeed while the whole suite saturated both cores
    /// (likely the 5 s connect timeout missed, then the pool's back-off; not traced).
    static func sessionUsesTLS(_ url: String, patience: Duration = .seconds(120)) async throws -> Bool {
        // The pool logs every retry of a refused handshake; the test needs only the outcome.
        var logger = Logger(label: "duet-tls-test")
        logger.logLevel = .critical
        let database = try PostgresDatabase(url: url, logger: logger)
        let task = Task { await database.run() }
        defer { task.cancel() }
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                let rows = try await database.client.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: database.logger)
                for try await ssl in rows.decode(Bool.self) { return ssl }
                return false
            }
            group.addTask {
                try await Task.sleep(for: patience)
                throw DuetError.refused("no connection within \(patience)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    @Test func ciRunsTheTLSChecks() {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            #expect(Self.tlsURL != nil, "CI must set DUET_TEST_POSTGRES_TLS_URL (see .ci/run)")
        }
    }

    @Test(.enabled(if: tlsURL != nil, "needs DUET_TEST_POSTGRES_TLS_URL from scripts/start-postgres.sh --tls"))
    func verifyFullConnectsOverTLSAndRefusesAWrongCAOrName() async throws {
        let url = try #require(Self.tlsURL)
        let rootCertificate = try #require(URLComponents(string: url)?.queryItems?.first { $0.name == "sslrootcert" }?.value)
        let wrongCA = URL(fileURLWithPath: rootCertificate).deletingLastPathComponent().appendingPathComponent("wrong-ca.pem").path

        #expect(try await Self.sessionUsesTLS(url), "verify-full must give an encrypted session")
        try await PostgresDatabase(url: url).checkConnection()
        // Refusals come from the handshake at once, in its words, not from a pool that never connects.
        // The certificate names localhost, not 127.0.0.1: verify-full refuses the address, verify-ca takes it.
        for (refused, expected) in [(Self.url(url, rootCertificate: wrongCA), "CERTIFICATE_VERIFY_FAILED"), (Self.url(url, host: "127.0.0.1"), "failedToValidateHostname")] {
            let started = ContinuousClock.now
            await #expect { try await PostgresDatabase(url: refused).checkConnection() } throws: { error in
                "\(error)".contains(expected) && "\(error)".contains("check sslrootcert")
            }
            #expect(ContinuousClock.now - started < .seconds(5))
            await #expect(throws: (any Error).self, "the pool must not connect either") { _ = try await Self.sessionUsesTLS(refused, patience: .seconds(6)) }
        }
        #expect(try await Self.sessionUsesTLS(Self.url(url, host: "127.0.0.1", mode: "verify-ca")))
        #expect(try await Self.sessionUsesTLS(Self.url(url, mode: "require")))
        #expect(try await Self.sessionUsesTLS(Self.url(url, mode: "disable")) == false, "disable means plaintext")
    }

    @Test func badTLSParametersAreRefusedByName() {
        let cases = [("postgres://u@localhost/db?sslmode=verify_full", "sslmode"), ("postgres://u@localhost/db?sslmode=", "sslmode"),
                     ("postgres://u@localhost/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "/nonexistent/ca.pem"),
                     ("postgres://u@localhost/db?ssl=true", "unknown parameter 'ssl'")]
        for (url, named) in cases {
            #expect(throws: DuetError.self, "\(url)") { _ = try PostgresDatabase(url: url) }
            do { _ = try PostgresDatabase(url: url) } catch { #expect("\(error)".contains(named), "\(url) → \(error)") }
        }
        #expect(throws: Never.self) { _ = try PostgresDatabase(url: "postgres://u:secret@localhost/db?sslmode=require") }
    }
}
#endif
