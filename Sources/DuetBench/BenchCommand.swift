public import ArgumentParser
import DuetCore
import DuetKernels
import DuetLab
import DuetStore
import DuetTraining
import DuetCommandLine
import Foundation

public struct BenchCommand: AsyncParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks. `../shared/bench/peers.py` drives these and compares Duet with its peers.",
        subcommands: [ALSBench.self, ANNBench.self, ExactBench.self, FilteredBench.self, IndexLoadBench.self, E4M3Bench.self, EventLogBench.self, RecommendBench.self, DigestBench.self]
    )

    struct EventLogBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "eventlog",
            abstract: "Durable append throughput of the embedded event log, in batches.",
            discussion: "With --exposures, appends exposures of 20 items each (Serve's writer sends one batch every 2 ms, about 40 at 20k requests/s) and also reports the process's CPU time per row."
        )
        @Option(help: "Events (or exposures) to append.") var events: Int = 200_000
        @Option(help: "Events per durable batch.") var batch: Int = 1_000
        @Flag(help: "Append exposures, as Serve logs them, instead of feedback events.") var exposures = false
        @Option(help: "Folder for the scratch log (default: a new temporary folder).") var dir: String?
        @OptionGroup var output: OutputOptions

        struct Result: Codable {
            var events: Int
            var batch: Int
            var seconds: Double
            var eventsPerSecond: Double
            var batchP50Millis: Double
            var batchP99Millis: Double
            /// User plus system CPU time of the process per row appended.
            var cpuMicrosPerRow: Double
        }

        func run() async throws {
            guard events > 0, batch > 0 else { throw ValidationError("--events and --batch must be positive") }
            let folder = URL(fileURLWithPath: dir ?? NSTemporaryDirectory()).appendingPathComponent("duet-bench-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let base = Date().epochMillis
            var batchTimes: [Double] = []
            // Built before the clock starts: the figure is the log's cost, not the generator's.
            let shown: [Exposure] = !exposures ? [] : (0..<events).map { row in
                Exposure(requestID: String(format: "019%05x-0000-7000-8000-%012x", row >> 20, row), user: "u\(row % 5_000)",
                         timestamp: base + Int64(row), items: (0..<20).map { "t\((row * 31 + $0 * 997) % 20_000)" }, bundleID: "bench-bundle")
            }
            let clock = ContinuousClock()
            let started = clock.now
            let cpuStarted = Self.processCPUSeconds()
            var done = 0
            while done < events {
                let size = min(batch, events - done)
                let batchStart: ContinuousClock.Instant
                if exposures {
                    let slice = Array(shown[done..<(done + size)])
                    batchStart = clock.now
                    try await log.append(exposures: slice)
                } else {
                    let slice = (done..<(done + size)).map {
                        FeedbackEvent(user: "u\($0 % 5_000)", item: "t\($0 % 20_000)", kind: .play, weight: 1, timestamp: base + Int64($0))
                    }
                    batchStart = clock.now
                    try await log.append(events: slice)
                }
                batchTimes.append((clock.now - batchStart).seconds * 1000)
                done += size
            }
            let cpuSeconds = Self.processCPUSeconds() - cpuStarted
            let seconds = (clock.now - started).seconds
            batchTimes.sort()
            let result = Result(events: events, batch: batch, seconds: seconds, eventsPerSecond: Double(events) / seconds,
                                batchP50Millis: batchTimes[batchTimes.count / 2],
                                batchP99Millis: batchTimes[min(batchTimes.count - 1, batchTimes.count * 99 / 100)],
                                cpuMicrosPerRow: cpuSeconds / Double(events) * 1e6)
            if output.json { return try printJSON(result) }
            print(String(format: "%d %@ in batches of %d: %.2f s, %.0f a second durable (batch p50 %.2f ms, p99 %.2f ms); %.1f µs of CPU a row",
                         events, exposures ? "exposures" : "events", batch, seconds, result.eventsPerSecond, result.batchP50Millis,
                         result.batchP99Millis, result.cpuMicrosPerRow))
        }

        /// This process's user plus system CPU time so far.
        static func processCPUSeconds() -> Double {
            var usage = rusage()
            #if canImport(Glibc)
            getrusage(RUSAGE_SELF.rawValue, &usage)
            #else
            getrusage(RUSAGE_SELF, &usage)
            #endif
            func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
            return seconds(usage.ru_utime) + seconds(usage.ru_stime)
        }
    }
}

/// `duet bench als`, the Duet side of `../shared/bench/peers.py als`.
struct ALSBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "als",
        abstract: "Train ALS on a train TSV and score it on a test TSV, as peers.py specifies.",
        discussion: "Input files hold 'user<TAB>item<TAB>weight' lines with no header. Prints {train_seconds, precision, map, ndcg, auc}."
    )
    @Option(help: "Training triples.") var train: String
    @Option(help: "Test triples.") var test: String
    @OptionGroup var als: ALSOptions
    @Option(help: "Cut-off of the ranking metrics.") var k: Int = 10
    @OptionGroup var output: OutputOptions

    struct Result: Codable {
        var train_seconds: Double
        var precision: Double
        var map: Double
        var ndcg: Double
        var auc: Double
        var kernels = VectorMath.variant
    }

    func run() throws {
        let (matrices, _, _) = try TripletFile.readMatrices([train, test])
        let configuration = try als.configuration()
        let clock = ContinuousClock()
        let started = clock.now
        let model = try ALS.train(matrices[0], configuration: configuration)
        let seconds = (clock.now - started).seconds
        let (metrics, _) = Evaluator.evaluate(model, train: matrices[0], test: matrices[1], k: k, threads: configuration.threads)
        let result = Result(train_seconds: seconds, precision: metrics.precision, map: metrics.map, ndcg: metrics.ndcg, auc: metrics.auc)
        if output.json { return try printJSON(result) }
        print(String(format: "ALS trained in %.3f s: p@%d %.4f  map@%d %.4f  ndcg@%d %.4f  auc %.4f",
                     seconds, k, result.precision, k, result.map, k, result.ndcg, result.auc))
    }
}

