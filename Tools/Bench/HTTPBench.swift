import ArgumentParser
import EventLog
import Foundation
import Histogram
import JSONCore

/// `touchstone-bench http`: N keep-alive clients posting datagen events to the tracking API —
/// as batches of 100 (what Segment's clients send) and as single `track` calls — against a
/// server it starts on loopback (or one given with --url). Prints events/s and p50/p99
/// latency as a Markdown table for the README.
struct HTTPBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http", abstract: "Tracking API throughput and latency: batches of 100 and single track calls.")

    @Option(help: "An NDJSON file from touchstone-datagen (default: generate 2,000 customers).") var input: String?
    @Option(help: "Target a running server (e.g. http://127.0.0.1:8080) instead of starting one.") var url: String?
    @Option(help: "The write key for --url.") var writeKey: String?
    @Option(help: "Concurrent keep-alive connections.") var connections = 32
    @Option(help: "Seconds measured per workload (after a 1 s warm-up).") var seconds = 10.0
    @Option(help: "Messages per batch request.") var batchSize = 100
    @Option(help: "Workloads: batch, track, both, or healthz (GET /healthz: what the HTTP stack alone costs a request).") var mode = "both"
    @Option(help: "Scratch directory for the server's data (removed afterwards).") var scratch = NSTemporaryDirectory() + "touchstone-http-bench"

    func run() throws {
        let binDir = URL(fileURLWithPath: Bundle.main.executablePath ?? CommandLine.arguments[0]).deletingLastPathComponent().path
        try? FileManager.default.removeItem(atPath: scratch)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        let inputFile: String
        if let input { inputFile = input } else {
            inputFile = scratch + "/events.ndjson"
            try spawn(binDir + "/touchstone-datagen", ["--customers", "2000", "--seed", "7", "--out", inputFile])
        }
        let corpus = try Corpus(path: inputFile, maxMessageBytes: 30 * 1024)
        print("corpus: \(corpus.messages.count) valid messages (\(corpus.tracks.count) track) from \(inputFile)")

        var server: BenchServer?
        let port: Int, key: String
        if let url {
            guard let p = URL(string: url)?.port, let writeKey else { throw BenchError("--url needs a port and --write-key") }
            port = p
            key = writeKey
        } else {
            let s = try BenchServer(binary: binDir + "/touchstone", data: scratch + "/data")
            server = s
            port = s.port
            key = s.writeKey
        }
        defer { server?.stop() }

        var rows: [String] = []
        let auth = "Basic " + Data((key + ":").utf8).base64EncodedString()
        var lagLines: [String] = []
        /// The server's own measure, every event's commit to visibility, over a workload's window.
        func lagLine(_ load: String, _ d: LagHistogram?) {
            guard let d else { return }
            lagLines.append("the server's commit-to-visible lag of every event under the \(load) (\(Int(d.count)) events, touchstone_projection_lag_seconds): p50 \(d.quantile(0.5)), p99 \(d.quantile(0.99)), share within 20 ms \(fmt(100 * d.share(within: 0.020), 1)) %; within "
                + [0.005, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1].map { "\(fmt($0 * 1000, 0)) ms \(fmt(100 * d.share(within: $0), 1)) %" }.joined(separator: ", "))
        }
        if mode == "batch" || mode == "both" {
            // While the batches load the server, a probe measures commit-to-visible: a track
            // call for a fresh user, then its profile with min_seq = the acknowledged seq.
            let probe = server.map { LagProbe(port: port, writeAuth: auth, readKey: $0.readKey()) }
            probe?.start()
            let r = try Load(port: port, authorization: auth, path: "/v1/batch", connections: connections,
                             seconds: seconds, messagesPerRequest: batchSize, corpus: corpus, single: false,
                             serverPID: server?.process.processIdentifier).run()
            rows.append(r.row("batches of \(batchSize)", connections))
            if let split = r.cpuSplit("batch load") { lagLines.append(split) }
            if let probe {
                let h = probe.stop()
                lagLines.append("commit-to-visible under the batch load (\(h.totalCount) probes, \(probe.failures) failed\(probe.firstFailure.map { ": first " + $0 } ?? "")): p50 \(fmt(Double(h.valueAtPercentile(50)) / 1000, 2)) ms, p99 \(fmt(Double(h.valueAtPercentile(99)) / 1000, 2)) ms, max \(fmt(Double(h.max) / 1000, 2)) ms (ack → profile answer: includes the read request's own trip through the loaded server)")
            }
            lagLine("batch load", r.lag)
        }
        if mode == "track" || mode == "both" {
            let r = try Load(port: port, authorization: auth, path: "/v1/track", connections: connections,
                             seconds: seconds, messagesPerRequest: 1, corpus: corpus, single: true,
                             serverPID: server?.process.processIdentifier).run()
            rows.append(r.row("single track calls", connections))
            if let split = r.cpuSplit("track load") { lagLines.append(split) }
            lagLine("track load", r.lag)
        }
        if mode == "healthz" {
            let r = try Load(port: port, authorization: auth, path: "/healthz", connections: connections,
                             seconds: seconds, messagesPerRequest: 0, corpus: corpus, single: true,
                             serverPID: server?.process.processIdentifier).run()
            rows.append(r.row("GET /healthz (the HTTP stack's floor; CPU per request)", connections))
        }
        if let server {
            let stats = try server.stats()
            print("server log: \(stats)")
        }
        print("")
        print(Load.Result.header)
        for r in rows { print(r) }
        if !lagLines.isEmpty { print(""); for l in lagLines { print(l) } }
    }
}

/// `touchstone_projection_lag_seconds` as the server's `/metrics` exports it: cumulative
/// counts per bucket bound (seconds).
struct LagHistogram {
    var buckets: [(Double, Double)]
    var count: Double { buckets.last?.1 ?? 0 }

    static func scrape(port: Int) throws -> LagHistogram {
        let socket = try BlockingSocket(port: port)
        defer { socket.close() }
        let (status, body) = try socket.roundTripBody(Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        guard status == 200 else { throw BenchError("/metrics answered \(status)") }
        var buckets: [(Double, Double)] = []
        for line in String(decoding: body, as: UTF8.self).split(separator: "\n") where line.hasPrefix("touchstone_projection_lag_seconds_bucket{") {
            guard let le = line.split(separator: "le=\"").last?.split(separator: "\"").first,
                  let n = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            buckets.append((le == "+Inf" ? .infinity : Double(le) ?? .infinity, n))
        }
        return LagHistogram(buckets: buckets.sorted { $0.0 < $1.0 })
    }

    func minus(_ o: LagHistogram) -> LagHistogram {
        LagHistogram(buckets: buckets.map { b in (b.0, b.1 - (o.buckets.first { $0.0 == b.0 }?.1 ?? 0)) })
    }

    func share(within bound: Double) -> Double {
        guard count > 0 else { return 0 }
        return (buckets.first { $0.0 >= bound - 1e-9 }?.1 ?? count) / count
    }

    /// The bucket holding quantile `q`, as "≤ bound ms" (a histogram gives no finer answer).
    func quantile(_ q: Double) -> String {
        guard count > 0 else { return "n/a" }
        guard let b = buckets.first(where: { $0.1 >= q * count }) else { return "n/a" }
        return b.0.isInfinite ? "> \(fmt(1000 * (buckets.dropLast().last?.0 ?? 0), 0)) ms" : "≤ \(fmt(1000 * b.0, 0)) ms"
    }
}

/// Posts a track call for a fresh user every 20 ms and reads its profile with
/// `min_seq` = the acknowledged seq: the time from the acknowledgement to the profile's
/// answer is the commit-to-visible lag (one loopback round trip included).
final class LagProbe: @unchecked Sendable {
    let port: Int, writeAuth: String, readKey: String
    private let lock = NSLock()
    private var running = true
    private var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    private var thread: Thread?
    private(set) var failures = 0
    private(set) var firstFailure: String?

    private func fail(_ why: String) {
        lock.withLock {
            failures += 1
            if firstFailure == nil { firstFailure = why }
        }
    }

    init(port: Int, writeAuth: String, readKey: String) {
        self.port = port
        self.writeAuth = writeAuth
        self.readKey = readKey
    }

    func start() {
        let t = Thread { [self] in
            guard let socket = try? BlockingSocket(port: port) else { return }
            defer { socket.close() }
            var n = 0
            while lock.withLock({ running }) {
                n += 1
                let user = "lag-probe-\(getpid())-\(n)"
                let body = Array(#"{"userId":"\#(user)","event":"Lag Probe"}"#.utf8)
                let post = Array("POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(writeAuth)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
                let posted = Result { try socket.roundTripBody(post) }
                guard case .success(let (status, reply)) = posted, status == 200,
                      let seq = (try? JSON.parse(reply))?["seq"]?.intValue else {
                    fail("track: \(posted.map { "\($0.0) \(String(decoding: $0.1.prefix(200), as: UTF8.self))" })")
                    usleep(20_000)
                    continue
                }
                let t0 = DispatchTime.now().uptimeNanoseconds
                let get = Array("GET /v1/profiles/user_id:\(user)?min_seq=\(seq) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(readKey)\r\n\r\n".utf8)
                let got = Result { try socket.roundTripBody(get) }
                guard case .success(let (s2, _)) = got, s2 == 200 else {
                    fail("profile: \(got.map { "\($0.0) \(String(decoding: $0.1.prefix(200), as: UTF8.self))" })")
                    usleep(20_000)
                    continue
                }
                let t1 = DispatchTime.now().uptimeNanoseconds
                lock.withLock { _ = histogram.record((t1 - t0) / 1000) }
                usleep(20_000)
            }
        }
        thread = t
        t.start()
    }

    func stop() -> Histogram<UInt64> {
        lock.withLock { running = false }
        while thread?.isFinished == false { usleep(1000) }
        return lock.withLock { histogram }
    }
}

/// `run` from outside `HTTPBench` (whose own `run()` hides the global one).
@discardableResult
private func spawn(_ exe: String, _ args: [String]) throws -> String { try run(exe, args) }

/// Valid messages from a datagen file, each split around its messageId so a fresh id can be
/// spliced in per send (`{"messageId":"<id>",` + the rest), making every send a real append.
struct Corpus: Sendable {
    let messages: [[UInt8]]  // the message after its opening brace, without messageId
    let tracks: [[UInt8]]

    init(path: String, maxMessageBytes: Int) throws {
        let builder = EnvelopeBuilder(schemas: try SchemaSet.load(builtIn: nil, dataDirectory: nil))
        let reader = try LineReader(path: path)
        var messages: [[UInt8]] = [], tracks: [[UInt8]] = []
        let source = SourceContext(name: "bench", channel: "web")
        while let next = try reader.next() {
            let line = Array(next.bytes)
            guard !next.truncated, line.count < maxMessageBytes, var m = try? JSON.parse(line) else { continue }
            guard case .success = builder.prepare(message: m, encodedSize: line.count, source: source, receivedAt: nowMicros()) else { continue }
            m["messageId"] = nil
            m["sentAt"] = nil
            var bytes = m.jsonBytes()
            bytes.removeFirst()  // "{"
            if bytes == [UInt8(ascii: "}")] { continue }
            messages.append(bytes)
            if m["type"] == "track" { tracks.append(bytes) }
        }
        guard !messages.isEmpty, !tracks.isEmpty else { throw BenchError("no valid messages in \(path)") }
        self.messages = messages
        self.tracks = tracks
    }
}

/// One workload: `connections` threads, each with a blocking keep-alive socket, sending for
/// `seconds` after a warm-up and recording each request's latency.
struct Load {
    let port: Int
    let authorization: String
    let path: String
    let connections: Int
    let seconds: Double
    let messagesPerRequest: Int
    let corpus: Corpus
    let single: Bool
    /// The server's process id, when it is ours: its CPU time and its commit-to-visible lag
    /// histogram are read over the measured window.
    var serverPID: Int32? = nil

    struct Result {
        var requests = 0
        var events = 0
        var errors = 0
        var seconds = 0.0
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        /// The server's CPU seconds over the measured window (after the warm-up).
        var serverCPUSeconds: Double?
        /// The server's commit-to-visible lag of every event in the measured window.
        var lag: LagHistogram?
        /// The server's CPU seconds over the measured window by thread group (`threadGroups`).
        var cpuByGroup: [String: Double]?

        /// Where the server's CPU went, per event (per request for a workload without events).
        func cpuSplit(_ name: String) -> String? {
            guard let groups = cpuByGroup, let total = serverCPUSeconds, total > 0 else { return nil }
            let units = Double(max(events > 0 ? events : requests, 1))
            let part = { (g: String) in "\(g) \(fmt((groups[g] ?? 0) * 1e6 / units, 1)) (\(fmt(100 * (groups[g] ?? 0) / total, 0)) %)" }
            let other = max(0, total - groups.values.reduce(0, +))
            return "server CPU µs per \(events > 0 ? "event" : "request") by thread under the \(name): "
                + BenchServer.threadGroups.map { part($0.group) }.joined(separator: ", ")
                + ", other (log writer, dispatch pool) \(fmt(other * 1e6 / units, 1)) (\(fmt(100 * other / total, 0)) %)"
        }

        func row(_ name: String, _ connections: Int) -> String {
            let ms = { (p: Double) in fmt(Double(histogram.valueAtPercentile(p)) / 1000, 2) }
            // Per event; per request for a workload that sends none.
            let units = events > 0 ? events : requests
            let cpu = serverCPUSeconds.map { "\(fmt($0 / seconds, 2)) | \(fmt($0 * 1e6 / Double(max(units, 1)), 1))" } ?? "– | –"
            return "| \(name) | \(connections) | \(fmt(Double(requests) / seconds)) | \(fmt(Double(events) / seconds)) | \(ms(50)) | \(ms(99)) | \(errors) | \(cpu) |"
        }

        static let header = """
            | tracking API, loopback, fsync per commit | connections | requests/s | events/s | p50 ms | p99 ms | errors | server cores busy | server CPU µs/event |
            |---|---:|---:|---:|---:|---:|---:|---:|---:|
            """
    }

    func run() throws -> Result {
        let tag = String(UInt64.random(in: 0 ... .max), radix: 36)
        let start = DispatchTime.now().uptimeNanoseconds
        let warmEnd = start + 1_000_000_000
        let end = warmEnd + UInt64(seconds * 1e9)
        final class Slot: @unchecked Sendable { var result = Result(); var error: Error? }
        let slots = (0..<connections).map { _ in Slot() }
        let group = DispatchGroup()
        for c in 0..<connections {
            group.enter()
            let t = Thread {
                defer { group.leave() }
                do { slots[c].result = try self.client(c, tag: tag, warmEnd: warmEnd, end: end) } catch { slots[c].error = error }
            }
            t.stackSize = 1 << 20
            t.start()
        }
        // The server's CPU over the measured window: sampled when the warm-up ends and at the end.
        var cpuStart: Double?, cpuEnd: Double?
        var threadsStart: [Int32: (group: String, seconds: Double)] = [:], threadsEnd = threadsStart
        var lagStart: LagHistogram?, lagEnd: LagHistogram?
        if let serverPID {
            let serverCPU = { BenchServer.cpuSeconds(pid: serverPID) }
            let sleepUntil = { (t: UInt64) in
                let now = DispatchTime.now().uptimeNanoseconds
                if t > now { usleep(useconds_t((t - now) / 1000)) }
            }
            sleepUntil(warmEnd)
            cpuStart = serverCPU()
            threadsStart = BenchServer.threadCPU(pid: serverPID)
            lagStart = try? LagHistogram.scrape(port: port)
            sleepUntil(end)
            cpuEnd = serverCPU()
            threadsEnd = BenchServer.threadCPU(pid: serverPID)
            lagEnd = try? LagHistogram.scrape(port: port)
        }
        group.wait()
        if let e = slots.compactMap(\.error).first { throw e }
        var total = Result()
        for s in slots {
            total.requests += s.result.requests
            total.events += s.result.events
            total.errors += s.result.errors
            total.histogram.add(s.result.histogram)
        }
        total.seconds = seconds
        if let cpuStart, let cpuEnd { total.serverCPUSeconds = cpuEnd - cpuStart }
        if !threadsEnd.isEmpty {
            // Threads that live through the window (the event loops, the views' threads); one
            // born in it counts whole. What exited meanwhile is left in "other".
            var groups: [String: Double] = [:]
            for (tid, t) in threadsEnd where !t.group.isEmpty {
                groups[t.group, default: 0] += t.seconds - (threadsStart[tid]?.seconds ?? 0)
            }
            total.cpuByGroup = groups
        }
        if let lagStart, let lagEnd { total.lag = lagEnd.minus(lagStart) }
        return total
    }

    private func client(_ c: Int, tag: String, warmEnd: UInt64, end: UInt64) throws -> Result {
        let socket = try BlockingSocket(port: port)
        defer { socket.close() }
        let pool = single ? corpus.tracks : corpus.messages
        var result = Result()
        var n = c * 7919 % pool.count
        var counter = 0
        var body: [UInt8] = []
        body.reserveCapacity(messagesPerRequest * 700 + 64)
        var request: [UInt8] = []
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= end { break }
            body.removeAll(keepingCapacity: true)
            if !single { body.append(contentsOf: #"{"batch":["#.utf8) }
            for i in 0..<messagesPerRequest {
                if i > 0 { body.append(UInt8(ascii: ",")) }
                body.append(contentsOf: #"{"messageId":"b-"#.utf8)
                body.append(contentsOf: "\(tag)-\(c)-\(counter)".utf8)
                body.append(contentsOf: #"","#.utf8)
                body.append(contentsOf: pool[n])
                counter += 1
                n += 1
                if n == pool.count { n = 0 }
            }
            if !single { body.append(contentsOf: "]}".utf8) }
            request.removeAll(keepingCapacity: true)
            if messagesPerRequest == 0 {
                request.append(contentsOf: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
            } else {
                request.append(contentsOf: "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(authorization)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
                request.append(contentsOf: body)
            }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let status = try socket.roundTrip(request)
            let t1 = DispatchTime.now().uptimeNanoseconds
            if t0 < warmEnd { continue }
            result.requests += 1
            if status == 200 {
                result.events += messagesPerRequest
                _ = result.histogram.record((t1 - t0) / 1000)
            } else {
                result.errors += 1
            }
        }
        return result
    }
}

/// A blocking TCP connection to 127.0.0.1 that sends a request and reads one HTTP/1.1
/// response (Content-Length bodies, as Touchstone sends).
final class BlockingSocket {
    let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { Foundation.close(fd); throw BenchError("connect to port \(port): \(String(cString: strerror(errno)))") }
    }

    func close() { Foundation.close(fd) }

    /// Writes `request` and returns the response's status code.
    func roundTrip(_ request: [UInt8]) throws -> Int { try roundTripBody(request).0 }

    /// Writes `request` and returns the response's status code and body.
    func roundTripBody(_ request: [UInt8]) throws -> (Int, [UInt8]) {
        try request.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw BenchError("send: \(String(cString: strerror(errno)))") }
                off += n
            }
        }
        var have = 0
        var headerEnd = -1
        var contentLength = 0
        while true {
            if have == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + have, $0.count - have, 0) }
            guard n > 0 else { throw BenchError("the server closed the connection") }
            have += n
            if headerEnd < 0, let e = Self.find(buffer, have) {
                headerEnd = e
                let head = String(decoding: buffer[0..<e], as: UTF8.self).lowercased()
                if let r = head.range(of: "content-length:") {
                    contentLength = Int(head[r.upperBound...].prefix { $0 == " " || $0.isNumber }.trimmingCharacters(in: .whitespaces)) ?? 0  // "\r\n" is one Character
                }
            }
            if headerEnd >= 0 && have >= headerEnd + 4 + contentLength {
                // "HTTP/1.1 200 OK"
                return (Int(String(decoding: buffer[9..<12], as: UTF8.self)) ?? 0, Array(buffer[(headerEnd + 4)..<(headerEnd + 4 + contentLength)]))
            }
        }
    }

    private static func find(_ b: [UInt8], _ count: Int) -> Int? {
        guard count >= 4 else { return nil }
        for i in 0...(count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }
}

/// A `touchstone serve` the benchmark starts on a free loopback port, with a write key.
final class BenchServer {
    let process = Process()
    let port: Int
    let writeKey: String
    let binary: String
    let data: String

    init(binary: String, data: String) throws {
        self.binary = binary
        self.data = data
        let created = try run(binary, ["keys", "create", "--data", data, "--source", "bench", "--channel", "web"])
        writeKey = created.split(separator: "\n").last.map(String.init) ?? ""
        let out = data + "/serve.out"
        FileManager.default.createFile(atPath: out, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--data", data, "--port", "0", "--log-level", "warning"]
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: data + "/serve.err")
        try process.run()
        var found: Int?
        for _ in 0..<3000 where found == nil {
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.contains("listening on") }) {
                found = line.split(separator: ":").last.flatMap { Int($0) }
            } else {
                guard process.isRunning else { throw BenchError("touchstone serve exited") }
                usleep(10_000)
            }
        }
        guard let found else { throw BenchError("touchstone serve did not start") }
        port = found
    }

    /// A read-scope API key for the query calls.
    func readKey() -> String {
        ((try? run(binary, ["keys", "create", "--data", data, "--scope", "read", "--name", "bench-read-\(UInt32.random(in: 0 ... .max))"])) ?? "")
            .split(separator: "\n").last.map(String.init) ?? ""
    }

    /// The server's named threads, by the kernel name's prefix: NIO's event loops and the
    /// views' tail (`views-reader`, `views-tail`, `views-commit`, `views-helper`).
    static let threadGroups: [(prefix: String, group: String)] = [("NIO-", "event loops"), ("views-", "views tail")]

    /// Each thread's group ("" for the rest) and user + system CPU seconds so far (Linux `/proc`).
    static func threadCPU(pid: Int32) -> [Int32: (group: String, seconds: Double)] {
        let dir = "/proc/\(pid)/task"
        guard let tids = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [:] }
        var out: [Int32: (group: String, seconds: Double)] = [:]
        for t in tids {
            guard let tid = Int32(t), let (comm, seconds) = stat("\(dir)/\(t)/stat") else { continue }
            out[tid] = (threadGroups.first { comm.hasPrefix($0.prefix) }?.group ?? "", seconds)
        }
        return out
    }

    /// A process's user + system CPU seconds so far (Linux `/proc`), nil elsewhere.
    static func cpuSeconds(pid: Int32) -> Double? { stat("/proc/\(pid)/stat")?.seconds }

    /// The command name and user + system CPU seconds of a `/proc` `stat` file.
    private static func stat(_ path: String) -> (comm: String, seconds: Double)? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return nil }
        // After the command name: state is field 3, utime and stime fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (String(text[text.index(after: open)..<close]), (user + system) / Double(sysconf(Int32(_SC_CLK_TCK))))
    }

    func stats() throws -> String {
        try run(binary, ["stats", "--data", data]).split(separator: "\n").prefix(1).joined()
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}
