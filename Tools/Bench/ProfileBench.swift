import ArgumentParser
import EventLog
import Foundation
import Histogram
import JSONCore
import LMDB
import Projections

/// `touchstone-bench profiles`: the fold (identity resolution and every computed trait)
/// replaying a datagen log into empty views; profile lookups in-process and over HTTP; and,
/// in the same run, PostgreSQL answering "count and revenue of this customer's events" over
/// the same events with an index on the user id (pgbench, same number of clients).
struct ProfileBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profiles", abstract: "Fold throughput, profile lookup latency in-process and over HTTP, vs PostgreSQL.")

    @Option(help: "An NDJSON file from touchstone-datagen (≈1M events for the README table).") var input: String
    @Option(help: "Scratch directory (removed afterwards).") var scratch = NSTemporaryDirectory() + "touchstone-bench-profiles"
    @Option(help: "Concurrent HTTP / PostgreSQL clients.") var clients = 4
    @Option(help: "Seconds per HTTP and PostgreSQL workload.") var seconds = 10.0
    @Flag(help: "Skip the PostgreSQL peer.") var noPostgres = false

    func run() throws {
        let binDir = URL(fileURLWithPath: Bundle.main.executablePath ?? CommandLine.arguments[0]).deletingLastPathComponent().path
        try? FileManager.default.removeItem(atPath: scratch)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        // The log, imported as `touchstone import` does.
        let log = try EventLog(directory: scratch + "/log")
        let builder = EnvelopeBuilder(schemas: try SchemaSet.load(builtIn: nil, dataDirectory: nil))
        let summary = try Importer(log: log, builder: builder, source: SourceContext(name: "bench", channel: "server"))
            .run(try LineReader(path: input))
        say("log: \(summary.appended) events")

        // 1. Fold: every event into empty views (identity resolution + all computed traits).
        let store = ViewStore(dataDirectory: scratch)
        // Profiles alone (identity + computed traits); segments and KPIs: `touchstone-bench segments`.
        let g = try ViewGeneration(name: "profiles-only", path: store.path("profiles-only"), projections: ProjectionSet().make([ProfileProjection.projectionName]))
        let runner = try ProjectionRunner(log: log, generation: g)
        let rssBefore = peakRSS()
        let (folded, foldSeconds) = try timed { try runner.catchUp() }
        try g.sync()
        let foldRate = Double(folded) / foldSeconds
        let reader = try ProfileReader(g)
        let profiles = try reader.count()
        say("fold, profiles alone: \(folded) events in \(fmt(foldSeconds, 2)) s = \(fmt(foldRate)) events/s; \(profiles) profiles; VmHWM \(rssBefore >> 20) → \(peakRSS() >> 20) MiB")
        // Every projection (profiles, segments, KPIs) into the generation the server will serve.
        let all = try store.open("g000001", set: ProjectionSet())
        try store.setCurrent("g000001")
        let (allFolded, allSeconds) = try timed { try ProjectionRunner(log: log, generation: all).catchUp() }
        try all.sync()
        say("fold, all projections: \(allFolded) events in \(fmt(allSeconds, 2)) s = \(fmt(Double(allFolded) / allSeconds)) events/s")

        // The customers to look up: user ids the fold resolved.
        var distinct: Set<String> = []
        try log.forEach { e in
            if let u = e.userId, u.hasPrefix("u"), u.dropFirst().allSatisfy(\.isNumber) { distinct.insert(u) }  // not the junk "undefined"
            return true
        }
        let users = distinct.sorted()
        guard !users.isEmpty else { throw BenchError("no user ids in \(input)") }

        // 2. In-process lookups: what `GET /v1/profiles/{id}` answers, without HTTP: resolve,
        // read the profile and its segments, decode, write the JSON text.
        var hist = Histogram<UInt64>(highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: .three)
        var rng = SystemRandomNumberGenerator()
        var found = 0
        for i in 0..<200_000 {
            let id = Identifier(type: "user_id", value: users[Int.random(in: 0..<users.count, using: &rng)])
            let t0 = DispatchTime.now().uptimeNanoseconds
            let p = try reader.document(id) { $0.count }
            let t1 = DispatchTime.now().uptimeNanoseconds
            if p != nil { found += 1 }
            if i >= 10_000 { _ = hist.record((t1 - t0) / 100) }  // 0.1 µs units
        }
        let us = { (q: Double) in fmt(Double(hist.valueAtPercentile(q)) / 10, 1) }
        say("lookup in-process: p50 \(us(50)) µs, p99 \(us(99)) µs, p99.9 \(us(99.9)) µs (\(found) of 200000 found)")
        // What the p99 of a few-µs call meets on this host: the time the thread is away
        // (interrupts, the hypervisor), seen by a loop reading the clock.
        let away = HostInterruptions.measure(seconds: 1)
        let hit = away.perSecond * Double(hist.valueAtPercentile(50)) / 1e7
        say("host interruptions (a clock-reading loop, 1 s): \(fmt(away.perSecond))/s of ≥ 5 µs, median \(fmt(away.medianMicros, 1)) µs, \(fmt(away.stolenShare * 100, 2)) % of the time; a lookup of the p50's length meets one with probability \(fmt(hit * 100, 2)) %")

        // 3. Over HTTP: `touchstone serve` on the same data, `clients` keep-alive connections.
        let server = try BenchServer(binary: binDir + "/touchstone", data: scratch)
        defer { server.stop() }
        let readKey = try runTool(binDir + "/touchstone", ["keys", "create", "--data", scratch, "--scope", "read", "--name", "bench-read"])
            .split(separator: "\n").last.map(String.init) ?? ""
        let ids = users
        let http = try GetLoad(port: server.port, authorization: "Bearer " + readKey, clients: clients, seconds: seconds) { _, n in
            "/v1/profiles/user_id:" + ids[Int(UInt(bitPattern: n &* 2_654_435_761) % UInt(ids.count))]
        }.run()
        say("lookup over HTTP: \(fmt(Double(http.requests) / http.seconds)) req/s, p50 \(fmt(http.ms(50), 2)) ms, p99 \(fmt(http.ms(99), 2)) ms, \(http.errors) errors")
        server.stop()

        // 4. PostgreSQL: the same events, an index on the user id, pgbench with the same clients.
        var pgRate: Double?
        if !noPostgres {
            let pg = try PostgresPeer()
            defer { pg.stop() }
            let tsv = scratch + "/events.tsv"
            let out = try FileHandle(forWritingTo: { FileManager.default.createFile(atPath: tsv, contents: nil); return URL(fileURLWithPath: tsv) }())
            var buffer: [UInt8] = []
            try log.forEach { e in
                buffer.append(contentsOf: "\(e.seq)\t".utf8)
                buffer.append(contentsOf: (e.userId ?? "\\N").utf8)
                buffer.append(UInt8(ascii: "\t"))
                for b in e.exportJSON.jsonBytes() {
                    // COPY text format: escape backslash, tab and newline.
                    switch b {
                    case UInt8(ascii: "\\"): buffer.append(contentsOf: [92, 92])
                    case 9: buffer.append(contentsOf: [92, UInt8(ascii: "t")])
                    case 10: buffer.append(contentsOf: [92, UInt8(ascii: "n")])
                    default: buffer.append(b)
                    }
                }
                buffer.append(10)
                if buffer.count > 1 << 20 { out.write(Data(buffer)); buffer.removeAll(keepingCapacity: true) }
                return true
            }
            out.write(Data(buffer))
            try out.close()
            if getuid() == 0 { _ = try runTool("/bin/chmod", ["a+r", tsv]); _ = try runTool("/bin/chmod", ["a+rx", scratch]) }
            try pg.sql("CREATE TABLE events (seq bigint PRIMARY KEY, user_id text, body jsonb NOT NULL)")
            try pg.sql("COPY events FROM STDIN", stdinFile: tsv)
            try pg.sql("CREATE INDEX events_user ON events (user_id)")
            try pg.sql("VACUUM ANALYZE events")
            let script = scratch + "/q.sql"
            let list = scratch + "/users"
            // The same customers as the HTTP run: a numbered list PostgreSQL picks from (a
            // primary-key lookup, the cheapest way to give pgbench a list of strings).
            try users.enumerated().map { "\($0.offset)\t\($0.element)" }.joined(separator: "\n").appending("\n")
                .write(toFile: list, atomically: true, encoding: .utf8)
            if getuid() == 0 { _ = try runTool("/bin/chmod", ["a+r", list]) }
            try pg.sql("CREATE TABLE bench_users (n int PRIMARY KEY, user_id text NOT NULL)")
            try pg.sql("COPY bench_users FROM STDIN", stdinFile: list)
            try """
            \\set n random(0, \(users.count - 1))
            SELECT count(*), coalesce(sum((body->'properties'->>'revenue')::numeric), 0) FROM events WHERE user_id = (SELECT user_id FROM bench_users WHERE n = :n);
            """.write(toFile: script, atomically: true, encoding: .utf8)
            if getuid() == 0 { _ = try runTool("/bin/chmod", ["a+r", script]) }
            let text = try pg.asPostgres("\(pg.bin)/pgbench", ["-h", "127.0.0.1", "-p", "\(pg.port)", "-U", "postgres", "-n",
                                                              "-c", "\(clients)", "-j", "\(min(clients, 2))", "-T", "\(Int(seconds))",
                                                              "-f", script, "postgres"])
            if let line = text.split(separator: "\n").first(where: { $0.contains("tps =") }),
               let v = line.split(separator: "=").last?.split(separator: " ").first.flatMap({ Double($0) }) {
                pgRate = v
            }
            let latency = text.split(separator: "\n").first { $0.contains("latency average") }.map(String.init) ?? ""
            say("PostgreSQL (pgbench, \(clients) clients): \(fmt(pgRate ?? 0)) queries/s; \(latency)")
        }

        say("""

        | profiles, \(folded) events | Touchstone | PostgreSQL | ratio |
        |---|---:|---:|---:|
        | fold (identity + all computed traits), events/s | \(fmt(foldRate)) | — | — |
        | fold with segments + KPIs too, events/s | \(fmt(Double(allFolded) / allSeconds)) | — | — |
        | lookup in-process p50 / p99 | \(us(50)) / \(us(99)) µs | — | — |
        | host interruptions ≥ 5 µs, per s (median length) | \(fmt(away.perSecond)) (\(fmt(away.medianMicros, 1)) µs) | — | — |
        | lookup over HTTP, \(clients) clients, req/s | \(fmt(Double(http.requests) / http.seconds)) | \(pgRate.map { fmt($0) } ?? "—") | \(pgRate.map { fmt(Double(http.requests) / http.seconds / $0, 2) + "×" } ?? "—") |
        | lookup over HTTP p99 | \(fmt(http.ms(99), 2)) ms | — | — |
        """)
    }
}

/// How often, and for how long, the running thread is taken off its core: a loop that reads
/// the clock sees every gap between two readings. On a virtual machine the timer interrupts
/// alone can take 10–20 µs each: any call of a few µs that meets one has that added, so once
/// `rate × call length` passes 1 %, the call's p99 is its p50 plus an interruption.
struct HostInterruptions {
    var perSecond = 0.0
    var medianMicros = 0.0
    var stolenShare = 0.0

    static func measure(seconds: Double) -> HostInterruptions {
        var gaps = Histogram<UInt64>(highestTrackableValue: 1_000_000_000, numberOfSignificantValueDigits: .three)
        var stolen: UInt64 = 0
        let start = DispatchTime.now().uptimeNanoseconds
        let end = start + UInt64(seconds * 1e9)
        var previous = start
        while previous < end {
            let now = DispatchTime.now().uptimeNanoseconds
            let gap = now - previous
            if gap >= 5_000 { _ = gaps.record(gap); stolen += gap }
            previous = now
        }
        let elapsed = Double(previous - start) / 1e9
        return HostInterruptions(perSecond: Double(gaps.totalCount) / elapsed,
                                 medianMicros: gaps.totalCount > 0 ? Double(gaps.valueAtPercentile(50)) / 1000 : 0,
                                 stolenShare: Double(stolen) / 1e9 / elapsed)
    }
}

/// `clients` threads each sending GETs on a keep-alive connection for `seconds` (after 1 s warm-up).
struct GetLoad {
    let port: Int
    let authorization: String
    let clients: Int
    let seconds: Double
    let path: @Sendable (Int, Int) -> String

    struct Result {
        var requests = 0, errors = 0
        var seconds = 0.0
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        func ms(_ p: Double) -> Double { Double(histogram.valueAtPercentile(p)) / 1000 }
    }

    func run() throws -> Result {
        let start = DispatchTime.now().uptimeNanoseconds
        let warmEnd = start + 1_000_000_000, end = warmEnd + UInt64(seconds * 1e9)
        final class Slot: @unchecked Sendable { var result = Result(); var error: Error? }
        let slots = (0..<clients).map { _ in Slot() }
        let group = DispatchGroup()
        for c in 0..<clients {
            group.enter()
            let t = Thread {
                defer { group.leave() }
                do {
                    let socket = try BlockingSocket(port: port)
                    defer { socket.close() }
                    var n = c * 1_000_003
                    while true {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        if t0 >= end { break }
                        let request = Array("GET \(path(c, n)) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(authorization)\r\n\r\n".utf8)
                        n += 1
                        let status = try socket.roundTrip(request)
                        let t1 = DispatchTime.now().uptimeNanoseconds
                        if t0 < warmEnd { continue }
                        slots[c].result.requests += 1
                        if status == 200 { _ = slots[c].result.histogram.record((t1 - t0) / 1000) } else { slots[c].result.errors += 1 }
                    }
                } catch { slots[c].error = error }
            }
            t.stackSize = 1 << 20
            t.start()
        }
        group.wait()
        if let e = slots.compactMap(\.error).first { throw e }
        var total = Result()
        for s in slots {
            total.requests += s.result.requests
            total.errors += s.result.errors
            total.histogram.add(s.result.histogram)
        }
        total.seconds = seconds
        return total
    }
}

/// `run` from file scope (inside a command, `run` names the command's own method).
private func runTool(_ exe: String, _ args: [String]) throws -> String { try run(exe, args) }

/// Prints a line at once (stdout to a file is block-buffered; a benchmark's progress should not be).
private func say(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }
