import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetDashboard
import Foundation
import Hummingbird
import Logging

struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "The review dashboard: models, production history, evaluations, experiments with live analysis, decisions, incidents.",
        discussion: """
            Server-rendered HTML with inline SVG; no scripts, no CDN. Read-only unless --admin-token is \
            given; then /?token=TOKEN enables promote, rollback and decide, each asking for a reason \
            that is recorded.
            """
    )
    @OptionGroup var home: HomeOptions
    @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "Port.") var port: Int = 8090
    @Option(help: "Token that enables state-changing actions (default: $DUET_ADMIN_TOKEN; none means read-only).") var adminToken: String?

    func run() async throws {
        let lab = try await home.lab()
        let log = try await home.openEventLog()
        let token = adminToken ?? ProcessInfo.processInfo.environment["DUET_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        let router = buildDashboardRouter(pages: DashboardPages(lab: lab, eventLog: log), adminToken: token)
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "duet-dashboard"),
                              logger: Logger(label: "duet-dashboard"))
        print("dashboard on http://\(host):\(port)/ (\(token == nil ? "read-only" : "admin actions at /?token=…"))")
        try await app.runService()
    }
}

