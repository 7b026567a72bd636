import ArgumentParser
import EventLog
import Foundation
import JSONCore
import Projections

/// `touchstone-bench replay`: a full rebuild of every projection from a log (the work of
/// `touchstone-replay`), in events/s, with peak memory: VmHWM (which counts the mapped log and
/// views pages the kernel keeps resident) and the heap's peak (RssAnon, sampled), which must
/// not grow with the log's length.
struct ReplayBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay", abstract: "Rebuild throughput (events/s) and peak memory of touchstone-replay's engine.")

    @Option(help: "An existing data directory (its log is replayed into a scratch generation; the live views are untouched).")
    var data: String?
    @Option(help: "An NDJSON file from touchstone-datagen to import into a scratch log.") var input: String?
    @Option(help: "Without --data or --input: generate this many customers with touchstone-datagen.") var customers = 20_000
    @Option(help: "The datagen seed.") var seed = 1
    @Option(help: "Scratch directory (removed afterwards).") var scratch = NSTemporaryDirectory() + "touchstone-bench-replay"
    @Option(name: .customLong("batch-size"), help: "Events per fold transaction.") var batchSize = 32768
    @Option(help: "Rebuilds to run (the best and the median are reported).") var runs = 1

    func run() throws {
        let binDir = URL(fileURLWithPath: Bundle.main.executablePath ?? CommandLine.arguments[0]).deletingLastPathComponent().path
        var dataDir = data ?? scratch
        if data == nil {
            try? FileManager.default.removeItem(atPath: scratch)
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            var file = input
            if file == nil {
                let out = scratch + "/datagen.ndjson"
                let p = Process()
                p.executableURL = URL(fileURLWithPath: binDir + "/touchstone-datagen")
                p.arguments = ["--customers", String(customers), "--seed", String(seed), "--out", out]
                p.standardError = FileHandle.nullDevice
                try p.run()
                p.waitUntilExit()
                guard p.terminationStatus == 0 else { throw BenchError("touchstone-datagen failed (build it: swift build --product touchstone-datagen)") }
                file = out
            }
            let log = try EventLog(directory: scratch + "/log")
            let builder = EnvelopeBuilder(schemas: try SchemaSet.load(builtIn: nil, dataDirectory: nil))
            let summary = try Importer(log: log, builder: builder, source: SourceContext(name: "bench", channel: "server"))
                .run(try LineReader(path: file!))
            print("log: \(summary.appended) events imported")
            try log.sync()
            dataDir = scratch
        }
        defer { if data == nil { try? FileManager.default.removeItem(atPath: scratch) } }

        let log = try EventLog(directory: dataDir + "/log")
        let rebuilder = Rebuilder(dataDirectory: dataDir, log: log)
        let target = "bench-replay-\(getpid())"
        var rates: [Double] = []
        var last: RebuildResult?
        let hwmBefore = peakRSS()
        let sampler = MemorySampler()
        for _ in 0..<max(1, runs) {
            let r = try rebuilder.run(RebuildPlan(target: target, switchLive: false, replace: true, batchSize: batchSize))
            rates.append(r.eventsPerSecond)
            last = r
        }
        let anonPeak = sampler.stop()
        try? FileManager.default.removeItem(atPath: rebuilder.store.path(target))
        guard let r = last else { return }
        rates.sort()
        // An even count's median is the mean of the middle two (not the upper one).
        let median = rates.count % 2 == 1 ? rates[rates.count / 2] : (rates[rates.count / 2 - 1] + rates[rates.count / 2]) / 2
        print("replay: \(r.events) events, all projections (\(ProjectionSet.names.joined(separator: ", "))), batch \(batchSize): "
            + "best \(fmt(rates.last!)) events/s, median \(fmt(median)) events/s of \(rates.map { fmt($0) }.joined(separator: " / ")) (\(fmt(r.seconds, 2)) s last run); "
            + "heap (RssAnon) peak \(anonPeak >> 20) MiB; VmHWM \(hwmBefore >> 20) → \(peakRSS() >> 20) MiB (includes mapped log and views pages)")
        print("| rebuild, events/s | \(fmt(median)) | \(r.events) events, \(ProcessInfo.processInfo.activeProcessorCount) cores |")
        print("| rebuild heap (RssAnon) peak, MiB | \(anonPeak >> 20) | VmHWM \(peakRSS() >> 20) MiB |")
    }
}
