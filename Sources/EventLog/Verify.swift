import Foundation
import JSONCore
import LMDB

/// What `EventLog.verify` found.
public struct VerifyReport: Sendable {
    public var events = 0
    public var lastSeq: UInt64 = 0
    public var deadLetters = 0
    public var indexEntries = 0
    /// Seqs removed by compaction (accepted gaps).
    public var erased = 0
    public var problems: [String] = []
    public var ok: Bool { problems.isEmpty }
}

/// Size and efficiency figures of the log (`touchstone stats`).
public struct LogStats: Sendable, Codable {
    public var events: Int
    public var last_seq: UInt64
    public var rejected: Int
    public var dictionaries: Int
    public var bytes_on_disk: Int
    public var file_bytes: Int
    public var bytes_per_event: Double
    public var record_bytes_per_event: Double
    public var compression_ratio: Double
    public var map_size: Int
    public var map_used: Double
}

extension EventLog {
    /// Checks the whole log: every record decodes (zstd checksums hold), seqs are dense from 1,
    /// and the messageId index and the records agree both ways. Problems are listed, at most
    /// `maxProblems` of them.
    public func verify(maxProblems: Int = 100) throws -> VerifyReport {
        var report = VerifyReport()
        func problem(_ s: String) { if report.problems.count < maxProblems { report.problems.append(s) } }
        var expected: UInt64 = 1
        var hashes: [UInt64: [UInt64]] = [:]
        let d = Decompressor()
        let gaps: Set<UInt64> = try environment.read { tx in
            var out: Set<UInt64> = []
            try tx.scan(erased) { k, _ in out.insert(UInt64(nativeKey: k)); return true }
            return out
        }
        report.erased = gaps.count
        try forEachRecord(chunk: 8192) { key, record in
            let seqs: [UInt64]
            do {
                seqs = try RecordCodec.header(key: key, record).entries.map(\.seq)
            } catch {
                problem("record \(key): \(error)")
                expected = key + 1
                return true
            }
            for seq in seqs {
                while expected < seq, gaps.contains(expected) { expected += 1 }
                if seq != expected { problem("seq gap: expected \(expected), found \(seq)") }
                expected = seq + 1
                report.events += 1
                report.lastSeq = seq
            }
            do {
                var decoded = 0
                try RecordCodec.decode(key: key, record: record, dictionaries: dictionaries, decompressor: d) { e in
                    _ = try JSON.decodeBinary(e.payload)  // the body is well-formed, not just checksummed
                    hashes[StableHash.fnv1a(e.source, e.messageId), default: []].append(e.seq)
                    decoded += 1
                    return true
                }
                if decoded != seqs.count { problem("record \(key): \(decoded) of \(seqs.count) events decode") }
            } catch {
                problem("record \(key) (seqs \(seqs.first ?? key)…\(seqs.last ?? key)): \(error)")
            }
            return true
        }
        try environment.read { tx in
            for index in [messageIDs] + (recentMessageIDs.map { [$0] } ?? []) {
                try tx.scan(index) { k, v in
                    report.indexEntries += 1
                    let (h, seq) = MessageIndex.decode(key: k, value: v)
                    if var list = hashes[h], let i = list.firstIndex(of: seq) {
                        list.remove(at: i)
                        hashes[h] = list.isEmpty ? nil : list
                    } else {
                        problem("\(index.name) entry \(h) → \(seq) has no matching record")
                    }
                    return true
                }
            }
            report.deadLetters = try tx.stat(rejected).entries
            if let counted = try tx.withValue(meta, key: Self.eventCountKey, { $0.loadUnaligned(as: Int64.self) }),
               counted != Int64(report.events) {
                problem("the event counter says \(counted) events, the records hold \(report.events)")
            }
        }
        for (_, seqs) in hashes.prefix(maxProblems) { for s in seqs { problem("record \(s) is missing from message_ids") } }
        return report
    }

    /// Size and use figures, cheap (no scan).
    public func stats() throws -> LogStats {
        let info = environment.info
        let (count, rejectedCount, payload, records) = try environment.read { tx in
            let c = try tx.withValue(meta, key: Self.eventCountKey) { $0.loadUnaligned(as: Int64.self) }.map(Int.init)
                ?? tx.stat(events).entries  // a log from before blocks, opened read-only
            let r = try tx.stat(rejected).entries
            let input = try tx.withValue(meta, key: Array("stat/input_bytes".utf8)) { $0.loadUnaligned(as: Int64.self) } ?? 0
            let stored = try tx.withValue(meta, key: Array("stat/record_bytes".utf8)) { $0.loadUnaligned(as: Int64.self) } ?? 0
            return (c, r, input, stored)
        }
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: directory + "/data.mdb")[.size] as? Int) ?? 0
        return LogStats(
            events: count, last_seq: lastSeq, rejected: rejectedCount, dictionaries: dictionaries.count,
            bytes_on_disk: info.usedBytes, file_bytes: fileBytes,
            bytes_per_event: count > 0 ? Double(info.usedBytes) / Double(count) : 0,
            record_bytes_per_event: count > 0 ? Double(records) / Double(count) : 0,
            compression_ratio: records > 0 ? Double(payload) / Double(records) : 0,
            map_size: info.mapSize, map_used: Double(info.usedBytes) / Double(info.mapSize))
    }
}
