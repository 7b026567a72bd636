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

/// The writer's in-memory filter in front of the messageId index: it may answer "maybe" for
/// a hash never stored, never "no" for one that was.
@Suite struct DedupeFilterBehaviour {
    /// Distinct well-spread 64-bit values (SplitMix64).
    func hashes(_ n: Int, seed: UInt64) -> [UInt64] {
        var state = seed
        return (0..<n).map { _ in
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    @Test func everyInsertedHashIsFoundAsTheFilterGrowsItsSegments() {
        let filter = DedupeFilter(minSegmentBits: 1 << 12, maxSegmentBits: 1 << 14)
        #expect(filter.mayContain(42), "a filter that was never built knows nothing")
        let inserted = hashes(10_000, seed: 1)
        for (n, h) in inserted.enumerated() {
            filter.insert(h)
            if n == 511 { #expect(filter.segmentCount == 1, "4,096 bits take 512 entries") }
            if n == 512 { #expect(filter.segmentCount == 2) }
        }
        // 512 + 1,024 in the first two; the third, the largest allowed, takes the rest.
        #expect(filter.segmentCount == 3)
        #expect(filter.bytes == (4_096 + 8_192 + 16_384) / 8)
        #expect(inserted.allSatisfy(filter.mayContain), "no false negatives")
        // Overfull (8,464 entries in 16,384 bits), it answers "maybe" more and more: still sound.
        let others = hashes(20_000, seed: 2)
        #expect(others.filter(filter.mayContain).count > others.count / 2)
    }

    @Test func atCapacityFewHashesNeverInsertedPass() {
        let filter = DedupeFilter(minSegmentBits: 1 << 20, maxSegmentBits: 1 << 20)
        let inserted = hashes((1 << 20) / DedupeFilter.fullBitsPerEntry, seed: 3)  // full: 8 bits an entry
        for h in inserted { filter.insert(h) }
        #expect(filter.segmentCount == 1)
        #expect(inserted.allSatisfy(filter.mayContain))
        let others = hashes(200_000, seed: 4)
        let rate = Double(others.filter(filter.mayContain).count) / Double(others.count)
        #expect(rate < 0.04, "false positives at 8 bits an entry: \(rate)")
        #expect(rate > 0, "a Bloom filter this full has some")
    }

    /// Another process appends to the same log while this one has its filter built: the
    /// filter no longer covers the index (its `stat/events` differs) and is built again, so
    /// retries of the other process's events are still found.
    @Test func retriesOfAnotherProcesssAppendsAreFound() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path + "/data/log")
        let mine = try (0..<20).map { try prepared(track("mine\($0)")) }
        #expect(try log.append(mine) == (1...20).map { .appended(UInt64($0)) })
        #expect(log.dedupeFilter.entries == 20)

        try appendFromAnotherProcess((0..<30).map { track("theirs\($0)") }, dir: dir)

        let retries = try (0..<30).map { try prepared(track("theirs\($0)")) } + mine
        let outcomes = try log.append(retries)
        #expect(outcomes == (21...50).map { .duplicate(UInt64($0)) } + (1...20).map { .duplicate(UInt64($0)) })
        #expect(log.lastSeq == 50)
        #expect(log.dedupeFilter.entries == 50, "built again from both processes' entries")

        // And from the index alone, after a reopen.
        let reopened = try EventLog(directory: dir.path + "/data/log")
        #expect(try reopened.append(Array(retries.reversed())).allSatisfy { if case .duplicate = $0 { true } else { false } })
        #expect(try reopened.append([try prepared(track("new"))]) == [.appended(51)])
    }
}
