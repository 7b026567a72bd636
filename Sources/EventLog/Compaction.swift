import Foundation
import JSONCore
import LMDB

/// What `EventLog.compact` removes.
public struct CompactionPlan: Sendable {
    /// Seqs to drop (an erased customer's events).
    public var dropSeqs: Set<UInt64> = []
    /// Retention: events older than this many µs before `now`, by event type name
    /// (`track`, `page`, …) or by track event name (`Product Viewed`); the most specific wins.
    public var retention: [String: Micros] = [:]
    public var now: Micros = 0
    /// Dead letters to drop (those that mention an erased customer).
    public var dropDeadLetter: @Sendable (DeadLetter) -> Bool = { _ in false }
    /// Strings that must not survive anywhere in the log, dictionaries included (the erased
    /// customers' identifiers). A dictionary that contains one is replaced, and the records
    /// compressed with it are recompressed, keeping their seqs.
    public var forbidden: [String] = []

    public init() {}
}

public struct CompactionReport: Sendable {
    public var kept = 0
    public var droppedErased = 0
    public var droppedExpired = 0
    public var droppedDeadLetters = 0
    public var recompressed = 0
    public var replacedDictionaries: [UInt32] = []
    public var bytesBefore = 0
    public var bytesAfter = 0
}

extension EventLog {
    /// Rewrites the log into `destination` without the planned records and dead letters.
    /// Every kept record keeps its seq and, unless its dictionary had to be replaced, its bytes.
    /// The new log remembers the dropped seqs (verify accepts those gaps) and the highest seq
    /// ever written (so no seq is reused). Run it on a log no other process is appending to;
    /// `replace(with:)` then swaps the directories.
    public func compact(into destination: String, plan: CompactionPlan) throws -> CompactionReport {
        var report = CompactionReport()
        report.bytesBefore = environment.info.usedBytes
        try? FileManager.default.removeItem(atPath: destination)
        let target = try EventLog(directory: destination, options: LogOptions(durability: .relaxed))
        let forbidden = plan.forbidden.filter { !$0.isEmpty }.map { Array($0.utf8) }

        // Dictionaries: keep the clean ones; replace the ones holding a forbidden string.
        var tainted: Set<UInt32> = []
        for id in (1...UInt32(max(dictionaries.count, 1))) {
            guard let d = dictionaries[id] else { continue }
            if forbidden.contains(where: { d.bytes.contains(subsequence: $0) }) { tainted.insert(id) }
        }
        let highSeq = lastSeq
        var samples: [[UInt8]] = []
        if !tainted.isEmpty {
            // Train the replacement on kept events only.
            try forEach { e in
                if !plan.dropSeqs.contains(e.seq), !forbidden.contains(where: { e.payload.contains(subsequence: $0) }) {
                    samples.append(e.payload)
                }
                return samples.count < 8000
            }
        }
        let nextID = UInt32(dictionaries.count + 1)
        let replacement: ZstdDictionary? = tainted.isEmpty || samples.count < 100 ? nil
            : try ZstdDictionary(id: nextID, bytes: ZstdDictionary.train(samples: samples, capacity: options.dictionaryCapacity),
                                 level: options.compressionLevel)
        report.replacedDictionaries = tainted.sorted()

        let compressor = Compressor(level: options.compressionLevel)
        let decompressor = Decompressor()
        try target.environment.write { tx in
            for id in (1...UInt32(max(dictionaries.count, 1))) where !tainted.contains(id) {
                if let d = dictionaries[id] { try tx.put(target.meta, key: Array("dict/\(id)".utf8), value: d.bytes) }
            }
            if let replacement { try tx.put(target.meta, key: Array("dict/\(replacement.id)".utf8), value: replacement.bytes) }
            try tx.put(target.meta, key: Array("high_seq".utf8), value: withUnsafeBytes(of: highSeq) { Array($0) })
        }
        // Records, in seq order, in chunks so memory stays flat. A block keeps its bytes when
        // it loses no event and its dictionary is clean; otherwise what is left of it is
        // compressed again, every event under its own seq.
        var chunk: [(UInt64, [UInt8])] = []
        var dropped: [UInt64] = []
        var keptEvents = 0
        func flush() throws {
            let (c, d, k) = (chunk, dropped, keptEvents)
            try target.environment.write { tx in
                for (seq, record) in c { try tx.put(target.events, key: seq.nativeKey, value: record, flags: .append) }
                for seq in d { try tx.put(target.erased, key: seq.nativeKey, value: []) }
                try target.addCounter(tx, "stat/events", k)
            }
            chunk.removeAll(keepingCapacity: true)
            dropped.removeAll(keepingCapacity: true)
            keptEvents = 0
        }
        try forEachRecord(chunk: 8192) { key, record in
            let h = try RecordCodec.header(key: key, record)
            var events: [Event] = []
            var expired: Set<UInt64> = []
            if !plan.retention.isEmpty || tainted.contains(h.dictionaryID) || h.entries.contains(where: { plan.dropSeqs.contains($0.seq) }) {
                try RecordCodec.decode(key: key, record: record, dictionaries: dictionaries, decompressor: decompressor) { e in
                    if let limit = e.event.flatMap({ plan.retention[$0] }) ?? plan.retention[e.type.name], plan.now - e.timestamp > limit {
                        expired.insert(e.seq)
                    }
                    events.append(e)
                    return true
                }
            }
            var kept: [Event] = []
            for e in events {
                if plan.dropSeqs.contains(e.seq) || expired.contains(e.seq) {
                    if expired.contains(e.seq) { report.droppedExpired += 1 } else { report.droppedErased += 1 }
                    dropped.append(e.seq)
                } else {
                    kept.append(e)
                }
            }
            if events.isEmpty || (kept.count == events.count && !tainted.contains(h.dictionaryID)) {
                chunk.append((key, Array(record)))
                report.kept += h.entries.count
                keptEvents += h.entries.count
            } else if let first = kept.first {
                // Recompress with the block's own dictionary, or the replacement of a tainted one.
                let dict = tainted.contains(h.dictionaryID) ? replacement : (h.dictionaryID == 0 ? nil : dictionaries[h.dictionaryID])
                chunk.append((first.seq, try RecordCodec.encode(kept, seqs: kept.map(\.seq), dictionary: dict, compressor: compressor)))
                report.recompressed += kept.count
                report.kept += kept.count
                keptEvents += kept.count
            }
            if chunk.count + dropped.count >= 1024 { try flush() }
            return true
        }
        try flush()
        // Previously erased seqs stay recorded as gaps.
        let previouslyErased: [UInt64] = try environment.read { tx in
            var out: [UInt64] = []
            try tx.scan(erased) { k, _ in out.append(UInt64(nativeKey: k)); return true }
            return out
        }
        // The messageId index, without the dropped seqs; dead letters; counters.
        let droppedSet = plan.dropSeqs
        try environment.read { tx in
            try target.environment.write { w in
                for seq in previouslyErased { try w.put(target.erased, key: seq.nativeKey, value: []) }
                for index in [messageIDs] + (recentMessageIDs.map { [$0] } ?? []) {  // both into the settled table
                    try tx.scan(index) { k, v in
                        let (hash, seq) = MessageIndex.decode(key: k, value: v)
                        if !droppedSet.contains(seq), try target.withRecord(w, holding: seq, { _, _ in true }) != nil {
                            try MessageIndex.withEntry(hash, seq: seq) { k, v in try w.put(target.messageIDs, key: k, value: v) }
                        }
                        return true
                    }
                }
                try tx.scan(rejected) { k, v in
                    var d = try DeadLetterCodec.decode(v)
                    d.id = UInt64(nativeKey: k)
                    if plan.dropDeadLetter(d) || forbidden.contains(where: { d.raw.contains(subsequence: $0) }) {
                        report.droppedDeadLetters += 1
                    } else {
                        try w.put(target.rejected, key: k.copyBytes(), value: v.copyBytes(), flags: .append)
                    }
                    return true
                }
                // The suppression list and the audit log go with the log.
                try tx.scan(suppressed) { k, v in try w.put(target.suppressed, key: k.copyBytes(), value: v.copyBytes()); return true }
                try tx.scan(audit) { k, v in try w.put(target.audit, key: k.copyBytes(), value: v.copyBytes(), flags: .append); return true }
                for name in ["format", "stat/input_bytes", "stat/record_bytes", "privacy/salt"] {
                    if let v = try tx.get(meta, key: Array(name.utf8)) { try w.put(target.meta, key: Array(name.utf8), value: v) }
                }
            }
        }
        try target.sync()
        report.bytesAfter = target.environment.info.usedBytes
        return report
    }

    /// Swaps a compacted copy in: `directory` becomes `compacted`'s contents, the old files are
    /// removed. Both logs must be closed by every other process.
    public static func replace(_ directory: String, with compacted: String) throws {
        let fm = FileManager.default
        let old = directory + ".old-\(getpid())"
        try? fm.removeItem(atPath: old)
        try fm.moveItem(atPath: directory, toPath: old)
        try fm.moveItem(atPath: compacted, toPath: directory)
        try fm.removeItem(atPath: old)
    }
}

extension UnsafeRawBufferPointer {
    func copyBytes() -> [UInt8] { Array(self) }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs in this array (naive search; needles are short).
    func contains(subsequence needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        let first = needle[0]
        var i = 0
        let last = count - needle.count
        while i <= last {
            if self[i] == first && self[i..<i + needle.count].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
