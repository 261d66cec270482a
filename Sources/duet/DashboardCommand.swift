import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetDashboard
import DuetStore
import Foundation
import Hummingbird
import Logging

struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "The review dashboard: models, production history, evaluations, experiments with live analysis, decisions, incidents.",
        discussion: """
            Server-rendered HTML with inline SVG; no scripts, no CDN. Without an admin token it is \
            read-only and open to whoever reaches it. With one ($DUET_ADMIN_TOKEN or --admin-token-file; \
            never a flag, where `ps` would show it), every page needs a session: sign in once at /login, \
            and an HttpOnly, SameSite=Strict cookie carries the session. Analyze, promote, rollback and \
            decide are POST forms with a CSRF token, checked for a same-origin Origin or Referer, and each \
            records its reason. Once anyone has a sign-in token (`duet lab people add NAME --token`), people \
            sign in with their name and token, and every action (reviews, decisions, promotions) carries their \
            name; the admin token then signs in as "admin". Pages never compute or write anything.
            """
    )
    @OptionGroup var home: HomeOptions
    @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "Port.") var port: Int = 8090
    @Option(help: ArgumentHelp("File holding the admin token (default: $DUET_ADMIN_TOKEN; none means read-only).", valueName: "file"))
    var adminTokenFile: String?
    @Option(help: "Hours a sign-in lasts.") var sessionHours: Double = 8
    @Flag(help: "Mark the session cookie Secure (when the dashboard is reached over HTTPS).") var secureCookie = false

    func run() async throws {
        let lab = try await home.lab()
        let log = try await home.openEventLog()
        var token = ProcessInfo.processInfo.environment["DUET_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if let adminTokenFile {
            do { token = try String(contentsOfFile: adminTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) } catch {
                throw ValidationError("cannot read the admin token file \(adminTokenFile): \(error.localizedDescription)")
            }
        }
        if let token, token.utf8.count < 16 { throw ValidationError("the admin token is shorter than 16 bytes; `duet key` prints a strong secret") }
        guard sessionHours > 0, sessionHours <= 24 * 30 else { throw ValidationError("--session-hours must be in (0, 720]") }
        var security = DashboardSecurity(adminToken: token)
        for person in try await lab.registry.people() where try await lab.registry.signInTokenHash(for: person.name) != nil {
            security.peopleSignIn = true
            break
        }
        security.sessionLifetime = .seconds(Int(sessionHours * 3_600))
        security.secureCookie = secureCookie
        let router = buildDashboardRouter(pages: DashboardPages(lab: lab, eventLog: log), security: security)
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "duet-dashboard"),
                              logger: Logger(label: "duet-dashboard"))
        if !security.signInRequired, !["127.0.0.1", "::1", "localhost"].contains(host) {
            print("warning: a read-only dashboard on \(host) shows every experiment to anyone who reaches it; set DUET_ADMIN_TOKEN to require sign-in")
        }
        print("dashboard on http://\(host):\(port)/ (\(security.signInRequired ? "sign in at /login to act" : "read-only"))")
        try await app.runService()
    }
}

