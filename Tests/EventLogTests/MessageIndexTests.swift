import Foundation
import JSONCore
import LMDB
import Testing
@testable import EventLog

/// The messageId index in two tables: new entries in `message_ids_recent`, swept a key
/// range at a time into `message_ids`. A retry must be found wherever its entry is.
@Suite struct MessageIndexSweep {
    func sizes(_ log: EventLog) throws -> (recent: Int, settled: Int) {
        try log.environment.read { tx in
            (try tx.stat(log.recentMessageIDs!).entries, try tx.stat(log.messageIDs).entries)
        }
    }

    @Test func retriesAreFoundWhereverTheSweepMovedTheirEntries() throws {
        let dir = TempDir()
        var options = LogOptions()
        options.recentIndexFloor = 64
        let log = try EventLog(directory: dir.path, options: options)
        let batches = (0..<200).map { b in (0..<50).map { try! prepared(track("s\(b)-\($0)", user: "u\($0)")) } }
        var seqs: [String: UInt64] = [:]
        for batch in batches {
            for (e, o) in zip(batch, try log.append(batch)) {
                guard case .appended(let s) = o else { Issue.record("\(e.messageId) not appended"); continue }
                seqs[e.messageId] = s
            }
        }
        let (recent, settled) = try sizes(log)
        #expect(recent + settled == 10_000)
        #expect(settled > 5_000, "the sweep moved the older entries")
        #expect(recent > 0 && recent < 4_000, "the recent table stays small: \(recent)")

        // Every retry, in any grouping, returns the original seq, before and after a reopen.
        for batch in batches.reversed() {
            for (e, o) in zip(batch, try log.append(batch)) { #expect(o == .duplicate(seqs[e.messageId]!)) }
        }
        #expect(log.lastSeq == 10_000)
        let reopened = try EventLog(directory: dir.path, options: options)
        #expect(try reopened.seq(source: "web", messageId: "s0-0") == seqs["s0-0"])
        #expect(try reopened.seq(source: "web", messageId: "s199-49") == seqs["s199-49"])
        let report = try reopened.verify()
        #expect(report.ok, "\(report.problems)")
        #expect(report.indexEntries == 10_000)
    }
}

/// Records a preparer sealed before the first dictionary existed are compressed again with
/// it by the writer (an import's preparers run ahead of the writer, which trains it).
@Suite struct SealingAhead {
    @Test func recordsSealedWithoutADictionaryGetTheFirstOne() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path, options: LogOptions(trainAfter: 300))
        var ahead = try (0..<1_200).map { i in
            try prepared(track("m\(i)", user: "u\(i % 90)", properties: ["product_id": .string("p\(i % 50)"), "price": 9.99, "category": "shoes"]))
        }
        try log.seal(&ahead)  // no dictionary yet: plain zstd frames
        #expect(ahead.filter { $0.sealedCount > 0 }.allSatisfy { RecordCodec.dictionaryID(of: $0.record!) == 0 })
        for chunk in stride(from: 0, to: ahead.count, by: 400) { try log.append(Array(ahead[chunk..<chunk + 400])) }
        #expect(log.dictionaries.count == 1)
        let ids = try log.environment.read { tx in
            var out: [UInt32] = []
            try tx.scan(log.events) { _, v in out.append(RecordCodec.dictionaryID(of: Array(v))); return true }
            return out
        }
        #expect(ids.count == 1_200 / RecordCodec.blockEvents)
        #expect(ids.allSatisfy { $0 == log.dictionaries.latest!.id }, "every record compressed with the dictionary")
        let report = try log.verify()
        #expect(report.ok, "\(report.problems)")
        #expect(try log.event(seq: 1_200)?.messageId == "m1199")
    }
}
