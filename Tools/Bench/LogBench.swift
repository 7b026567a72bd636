import ArgumentParser
import EventLog
import Foundation
import JSONCore
import LMDB

/// `touchstone-bench log`: the event log against PostgreSQL and the raw LMDB limit, on one
/// datagen file, in one run.
struct LogBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "Import, read and size of the event log vs PostgreSQL COPY and raw LMDB appends.")

    @Option(help: "An NDJSON file from touchstone-datagen (≥ 1M events for the README table).") var input: String
    @Option(help: "Scratch directory (removed afterwards).") var scratch = NSTemporaryDirectory() + "touchstone-bench"
    @Flag(help: "Skip the PostgreSQL peer.") var noPostgres = false

    func run() throws {
        try? FileManager.default.removeItem(atPath: scratch)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let ndjsonBytes = (try FileManager.default.attributesOfItem(atPath: input)[.size] as? Int) ?? 0

        // 1. Durable import through the real pipeline (parse, validate, encode, compress, fsync per commit).
        let log = try EventLog(directory: scratch + "/log")
        let builder = EnvelopeBuilder(schemas: try SchemaSet.load(builtIn: nil, dataDirectory: nil))
        let importer = Importer(log: log, builder: builder, source: SourceContext(name: "bench", channel: "server"))
        let sampler = MemorySampler()
        var anonAtQuarter = 0
        let summary = try importer.run(try LineReader(path: input)) { s in
            if anonAtQuarter == 0, s.lines > 250_000 { anonAtQuarter = anonRSS() }
        }
        let anonPeak = sampler.stop()
        let importRate = Double(summary.lines) / summary.seconds
        let stats = try log.stats()
        print("import: \(summary.lines) lines, \(summary.appended) appended, \(summary.duplicates) duplicates, \(summary.rejected) rejected in \(fmt(summary.seconds, 2)) s; heap (RssAnon) peak \(anonPeak >> 20) MiB, at 250k lines \(anonAtQuarter >> 20) MiB; VmHWM \(peakRSS() >> 20) MiB (includes the mapped log)")

        // 2. Read + decompress + decode on one core: the fields a fold reads (lazy view), and
        //    the whole body as a JSON tree.
        var n = 0, touched = 0
        let (_, readSeconds) = try timed {
            try log.forEach(chunk: 16384) { e in
                n += 1
                let v = e.view
                if e.userId != nil || e.anonymousId != nil { touched += 1 }
                if v["event"]?.isString("Order Completed") == true { touched += Int(v["properties"]?["total"]?.doubleValue ?? 0) }
                if v["context"]?["traits"]?["email"] != nil { touched += 1 }
                return true
            }
        }
        let readRate = Double(n) / readSeconds
        var trees = 0
        let (_, treeSeconds) = try timed {
            try log.forEach(chunk: 16384) { e in
                if case .object(let m) = e.body { trees += m.count }
                return true
            }
        }
        let treeRate = Double(n) / treeSeconds

        // 2b. The tracking API's work on a body of 100 messages, without HTTP or the log, on one
        //     core: parse the body to binary, split the batch, measure and prepare (validate,
        //     envelope, the stored form) every message, as `TrackingRoutes.batch` does.
        var bodies: [[UInt8]] = []
        var lines: [Substring] = []
        for line in try String(contentsOfFile: input, encoding: .utf8).split(separator: "\n") where lines.count < 100_000 {
            if (try? JSON.transcode(Array(line.utf8))).map({ JSONView(bytes: $0).isObject }) == true { lines.append(line) }  // JSON objects only
        }
        for start in stride(from: 0, to: lines.count, by: 100) {
            bodies.append(Array(("{\"batch\":[" + lines[start..<min(start + 100, lines.count)].joined(separator: ",") + "]}").utf8))
        }
        var preparedCount = 0
        let context = SourceContext(name: "bench", channel: "web")
        let (_, requestSeconds) = try timed {
            for round in 0..<3 {
                for body in bodies {
                    let (binary, sizes) = try body.withUnsafeBufferPointer { try JSON.transcode($0, elementsAt: 2) }
                    let view = JSONView(bytes: binary)
                    guard let list = view["batch"] else { continue }
                    for span in list.elementSpans {
                        let item = JSONView(bytes: list.bytes, offset: span.lowerBound)
                        let size = sizes.size(at: span.lowerBound) ?? item.compactByteCount
                        if case .success = builder.prepare(binary: Array(list.bytes[span]), encodedSize: size,
                                                           source: context, receivedAt: 1_750_000_000_000_000 + Int64(round)) {
                            preparedCount += 1
                        }
                    }
                }
            }
        }
        let requestRate = Double(preparedCount) / requestSeconds

        // 3. Raw LMDB limit: the same encoded records (blocks) appended under their keys with
        //    MDB_APPEND, no parsing.
        var records: [(UInt64, [UInt8])] = []
        try log.forEachRecord(chunk: 16384) { key, r in records.append((key, Array(r))); return true }
        let raw = try Environment(path: scratch + "/raw", options: EnvironmentOptions(mapSize: 1 << 30))
        let rawDB = try raw.openDatabase("events", flags: .integerKey)
        let (_, rawSeconds) = try timed {
            for chunk in stride(from: 0, to: records.count, by: 4096) {
                try raw.write { tx in
                    for (key, r) in records[chunk..<min(chunk + 4096, records.count)] {
                        try tx.put(rawDB, key: key.nativeKey, value: r, flags: .append)
                    }
                }
            }
        }
        let rawRate = Double(n) / rawSeconds
        records = []

        // 4. PostgreSQL: COPY of the same (valid, de-duplicated) events into jsonb with a
        //    bigserial key and a unique index on messageId.
        var pgRate = 0.0, pgBytes = 0
        if !noPostgres {
            let clean = scratch + "/clean.ndjson"
            FileManager.default.createFile(atPath: clean, contents: nil)
            let out = try FileHandle(forWritingTo: URL(fileURLWithPath: clean))
            var buffer: [UInt8] = []
            try log.forEach(chunk: 16384) { e in
                // The client's message (no Touchstone envelope), one JSON document per line.
                var m = e.body
                m["type"] = .string(e.type.name)
                m["timestamp"] = .string(Timestamp.format(e.timestamp))
                m.write(to: &buffer)
                buffer.append(0x0A)
                if buffer.count > 1 << 20 { out.write(Data(buffer)); buffer.removeAll(keepingCapacity: true) }
                return true
            }
            out.write(Data(buffer))
            try out.close()
            if getuid() == 0 { _ = try? EventLogBenchShell.chmodReadable(clean, scratch) }
            let pg = try PostgresPeer()
            defer { pg.stop() }
            try pg.sql("CREATE TABLE events (seq bigserial PRIMARY KEY, doc jsonb NOT NULL); CREATE UNIQUE INDEX events_message_id ON events ((doc->>'messageId'));")
            let (_, pgSeconds) = try timed {
                try pg.sql("COPY events (doc) FROM STDIN WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')", stdinFile: clean)
            }
            let count = Int(try pg.sql("SELECT count(*) FROM events")) ?? 0
            pgRate = Double(count) / pgSeconds
            pgBytes = Int(try pg.sql("SELECT pg_total_relation_size('events')")) ?? 0
            print("postgres: \(count) rows in \(fmt(pgSeconds, 2)) s, \(pgBytes) bytes (table + indexes)")
        }

        let events = Double(stats.events)
        let ndjsonPerEvent = Double(ndjsonBytes) / Double(max(summary.lines, 1))
        print("")
        print("| event log, \(summary.lines) events | Touchstone | peer | ratio |")
        print("|---|---:|---:|---:|")
        if pgRate > 0 {
            print("| import, durable (events/s) | \(fmt(importRate)) | PostgreSQL COPY jsonb: \(fmt(pgRate)) | \(fmt(importRate / pgRate, 2))× |")
        }
        print("| import vs raw LMDB MDB_APPEND of the same records (events/s) | \(fmt(importRate)) | raw LMDB: \(fmt(rawRate)) | \(fmt(importRate / rawRate, 2))× |")
        print("| import heap (RssAnon) peak, MiB | \(anonPeak >> 20) | at 250k lines: \(anonAtQuarter >> 20) | |")
        print("| parse + split + validate + envelope batches of 100 as the tracking API does, 1 core (events/s) | \(fmt(requestRate)) | | |")
        print("| read + decompress + decode the fields a fold reads, 1 core (events/s) | \(fmt(readRate)) | | |")
        print("| read + decompress + decode the whole JSON tree, 1 core (events/s) | \(fmt(treeRate)) | | |")
        print("| bytes/event on disk (log env, all indexes) | \(fmt(stats.bytes_per_event, 1)) | NDJSON: \(fmt(ndjsonPerEvent, 1)) | \(fmt(stats.bytes_per_event / ndjsonPerEvent, 3)) of NDJSON |")
        if pgBytes > 0 {
            let pgPer = Double(pgBytes) / events
            print("| bytes/event vs PostgreSQL table + indexes | \(fmt(stats.bytes_per_event, 1)) | \(fmt(pgPer, 1)) | \(fmt(stats.bytes_per_event / pgPer, 3)) of PostgreSQL |")
        }
        print("| record bytes/event (header + zstd frame) | \(fmt(stats.record_bytes_per_event, 1)) | | compression \(fmt(stats.compression_ratio, 2))× |")
    }
}

enum EventLogBenchShell {
    /// Lets the postgres user read the scratch file when the benchmark runs as root.
    static func chmodReadable(_ file: String, _ dir: String) throws {
        _ = try run("/bin/chmod", ["a+rx", dir])
        _ = try run("/bin/chmod", ["a+r", file])
    }
}
