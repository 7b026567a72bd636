@testable import EventLog
import Foundation
import JSONCore
import LMDB
import Testing

@Suite struct RecordFormat {
    @Test func aBlockRoundTripsEveryFieldOfEveryEvent() throws {
        let ps = [
            try prepared(track("m1"), receivedAt: 1_740_830_500_000_000),
            try prepared(track("m2", event: "Order Completed", at: "2024-12-31T23:59:59.123456Z",
                               properties: ["order_id": "o1", "revenue": 42.5]), receivedAt: 1_740_830_500_000_001),
            try prepared(["type": "identify", "messageId": "m3", "userId": "u9", "traits": ["email": "a@b.co"],
                          "timestamp": "2025-03-01T12:00:00Z"], receivedAt: 1_740_830_400_000_000),
        ]
        let record = try RecordCodec.encode(ps, dictionary: nil, compressor: Compressor())
        let (header, events) = try record.withUnsafeBytes { r in
            var out: [Event] = []
            try RecordCodec.decode(key: 7, record: r, dictionaries: DictionarySet(), decompressor: Decompressor()) { out.append($0); return true }
            return (try RecordCodec.header(key: 7, r), out)
        }
        #expect(header.version == 2)
        #expect(header.entries.map(\.seq) == [7, 8, 9])
        #expect(header.lastSeq == 9)
        #expect(events.map(\.seq) == [7, 8, 9])
        #expect(events.map(\.type) == [.track, .track, .identify])
        #expect(events.map(\.timestamp) == ps.map(\.timestamp))
        #expect(events.map(\.receivedAt) == [1_740_830_500_000_000, 1_740_830_500_000_001, 1_740_830_400_000_000])
        #expect(events.map(\.payload) == ps.map(\.payload))
        #expect(events[0].event == "Product Viewed")
        #expect(events[0].properties?["price"] == .double(19.99))
        #expect(events[1].properties?["revenue"] == .double(42.5))
        #expect(events[2].traits?["email"] == .string("a@b.co"))
        #expect(events.map(\.messageId) == ["m1", "m2", "m3"])
        #expect(events[0].channel == "web")
        // One event alone, without handing out the others.
        let middle = try record.withUnsafeBytes {
            try RecordCodec.decode(seq: 8, key: 7, record: $0, dictionaries: DictionarySet(), decompressor: Decompressor())
        }
        #expect(middle?.messageId == "m2")
        let outside = try record.withUnsafeBytes {
            try RecordCodec.decode(seq: 10, key: 7, record: $0, dictionaries: DictionarySet(), decompressor: Decompressor())
        }
        #expect(outside == nil)
    }

    @Test func aBlockWithGapsKeepsEverySeq() throws {
        let ps = try (1...3).map { try prepared(track("m\($0)")) }
        let record = try RecordCodec.encode(ps, seqs: [7, 9, 12], dictionary: nil, compressor: Compressor())
        try record.withUnsafeBytes { r in
            #expect(try RecordCodec.lastSeq(key: 7, r) == 12)
            var seqs: [UInt64] = []
            try RecordCodec.decode(key: 7, record: r, dictionaries: DictionarySet(), decompressor: Decompressor()) { seqs.append($0.seq); return true }
            #expect(seqs == [7, 9, 12])
            #expect(try RecordCodec.decode(seq: 9, key: 7, record: r, dictionaries: DictionarySet(), decompressor: Decompressor())?.messageId == "m2")
            #expect(try RecordCodec.decode(seq: 8, key: 7, record: r, dictionaries: DictionarySet(), decompressor: Decompressor()) == nil)
        }
    }

    /// Logs written before blocks hold one event a record (version 1); they stay readable.
    @Test func readsVersionOneRecords() throws {
        let p = try prepared(track("m1"), receivedAt: 1_740_830_500_000_000)
        var record: [UInt8] = [1, 0, p.type.rawValue, 0]
        Varint.writeSigned(p.receivedAt, to: &record)
        Varint.writeSigned(p.timestamp - p.receivedAt, to: &record)
        let frame = record.count
        try Compressor().compress(p.payload, dictionary: nil, into: &record)
        record.removeSubrange(frame..<frame + 4)
        let e = try record.withUnsafeBytes { r in
            #expect(try RecordCodec.lastSeq(key: 5, r) == 5)
            return try RecordCodec.decode(seq: 5, key: 5, record: r, dictionaries: DictionarySet(), decompressor: Decompressor())
        }
        #expect(e?.seq == 5)
        #expect(e?.timestamp == p.timestamp)
        #expect(e?.receivedAt == p.receivedAt)
        #expect(e?.payload == p.payload)
    }

    @Test func aFlippedByteFailsTheChecksum() throws {
        let ps = try (1...4).map { try prepared(track("m\($0)")) }
        var record = try RecordCodec.encode(ps, dictionary: nil, compressor: Compressor())
        record[record.count - 6] ^= 0x40
        #expect(throws: (any Error).self) {
            try record.withUnsafeBytes { try RecordCodec.decode(key: 1, record: $0, dictionaries: DictionarySet(), decompressor: Decompressor()) { _ in true } }
        }
    }
}

@Suite struct DeadLetterStorage {
    /// Large rejected inputs are kept compressed, and come back byte for byte.
    @Test func largeRawInputsAreStoredCompressedAndReadBackExactly() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        let big = Array(String(repeating: #"{"type":"track","event":"x","properties":{"blob":"abcdefgh"}},"#, count: 600).utf8)
        let small: [UInt8] = Array("{not json".utf8)
        try log.reject([DeadLetter(time: 1, source: "web", code: "too_large", reason: "message is big", raw: big),
                        DeadLetter(time: 2, source: "web", code: "malformed", reason: "bad", raw: small)])
        let back = try log.deadLetters()
        #expect(back.map(\.raw) == [big, small])
        #expect(back.map(\.reason) == ["message is big", "bad"])
        let stored = try log.environment.read { tx in
            var sizes: [Int] = []
            try tx.scan(log.rejected) { _, v in sizes.append(v.count); return true }
            return sizes
        }
        #expect(stored[0] < big.count / 4)
        #expect(stored[1] > small.count)
    }
}

/// Events are stored sixteen to a record; every way of reading them sees single events.
@Suite struct Blocks {
    @Test func everyReadPathFindsEverySeqAcrossBlocks() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        for size in [1, 37, 5, 16, 100] {  // commits of several sizes: partial and full blocks
            let base = Int(log.lastSeq)
            try log.append(try (1...size).map { try prepared(track("m\(base + $0)")) })
        }
        #expect(log.lastSeq == 159)
        let records = try log.environment.read { tx in try tx.stat(log.events).entries }
        #expect(records == 1 + 3 + 1 + 1 + 7, "blocks of at most 16 events, never across commits")
        #expect(try log.stats().events == 159)
        for seq in [1, 2, 17, 38, 39, 43, 58, 59, 60, 159] as [UInt64] {
            #expect(try log.event(seq: seq)?.messageId == "m\(seq)")
        }
        #expect(try log.event(seq: 160) == nil)
        #expect(try log.events(from: 20, limit: 30).map(\.seq) == Array(20...49))
        var seen: [UInt64] = []
        try log.forEach(from: 40, through: 61, chunk: 7) { seen.append($0.seq); return true }
        #expect(seen == Array(40...61))
        seen = []
        try log.forEach(seqs: [3, 4, 18, 90, 91, 158, 200]) { seen.append($0.seq) }
        #expect(seen == [3, 4, 18, 90, 91, 158])
        #expect(try log.seq(source: "web", messageId: "m77") == 77)
        let report = try log.verify()
        #expect(report.ok, "\(report.problems)")
        #expect(report.events == 159)
    }

    /// Arrays sliced through sealed blocks are appended whole: the cut blocks are sealed again.
    @Test func slicesThroughSealedBlocksAreSealedAgain() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        var all = try (1...40).map { try prepared(track("m\($0)")) }
        try log.seal(&all)  // blocks 0..<16, 16..<32, 32..<40
        #expect(all.map(\.sealedCount).filter { $0 > 0 } == [16, 16, 8])
        for range in [0..<10, 10..<20, 20..<40] { try log.append(Array(all[range])) }
        #expect(try log.events(from: 1, limit: 100).map(\.messageId) == (1...40).map { "m\($0)" })
        let report = try log.verify()
        #expect(report.ok, "\(report.problems)")
        #expect(report.events == 40)
    }

    /// A retry inside a sealed block is left out of it; the new events around it keep dense seqs.
    @Test func aRetryInsideASealedBlockIsLeftOut() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        try log.append([try prepared(track("old"))])
        var batch = try ["a", "old", "b", "a", "c"].map { try prepared(track($0)) }
        try log.seal(&batch)
        #expect(batch[0].sealedCount == 5)
        let out = try log.append(batch)
        #expect(out == [.appended(2), .duplicate(1), .appended(3), .duplicate(2), .appended(4)])
        #expect(try log.events(from: 1, limit: 10).map(\.messageId) == ["old", "a", "b", "c"])
        #expect(try log.stats().events == 4)
        let report = try log.verify()
        #expect(report.ok, "\(report.problems)")
    }
}

@Suite struct Appending {
    @Test func seqsAreDenseFromOneInSubmissionOrder() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        let out = try log.append((1...5).map { try prepared(track("m\($0)")) })
        #expect(out == (1...5).map { AppendOutcome.appended(UInt64($0)) })
        let more = try log.append([try prepared(track("m6"))])
        #expect(more == [.appended(6)])
        #expect(log.lastSeq == 6)
        #expect(try log.events(from: 1, limit: 100).map(\.messageId) == (1...6).map { "m\($0)" })
    }

    @Test func aRetriedMessageIdReturnsTheOriginalSeq() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        try log.append([try prepared(track("a")), try prepared(track("b"))])
        let retry = try log.append([try prepared(track("b")), try prepared(track("c")), try prepared(track("c"))])
        #expect(retry == [.duplicate(2), .appended(3), .duplicate(3)])
        #expect(log.lastSeq == 3)
        #expect(try log.seq(source: "web", messageId: "b") == 2)
    }

    @Test func theSameMessageIdFromAnotherSourceIsADifferentEvent() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        try log.append([try prepared(track("a"))])
        let other = try builder.prepare(message: track("a"), encodedSize: nil, source: SourceContext(name: "app", channel: "mobile"),
                                        receivedAt: 1).get()
        #expect(try log.append([other]) == [.appended(2)])
    }

    @Test func rejectedInputsAreKeptWithReasonAndRawBytes() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        let importer = Importer(log: log, builder: builder, source: web)
        let file = dir.path + "/in.ndjson"
        var lines = [track("ok1").jsonString, "{not json", #"{"type":"track","userId":"u1"}"#,
                     track("big", properties: ["x": .string(String(repeating: "y", count: 40_000))]).jsonString, "",
                     track("ok2").jsonString]
        lines.append(track("ok1").jsonString)
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let s = try importer.run(try LineReader(path: file))
        #expect(s.appended == 2)
        #expect(s.duplicates == 1)
        #expect(s.rejected == 3)
        let dead = try log.deadLetters()
        #expect(dead.map(\.code) == ["malformed_json", "invalid", "too_large"])
        #expect(dead[0].raw == Array("{not json".utf8))
        #expect(dead[1].reason.contains("event"))
        #expect(dead.allSatisfy { $0.source == "web" })
    }

    @Test func theMapGrowsFromOneMebibyteWithNothingLost() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path, options: LogOptions(initialMapSize: 1 << 20))
        var n = 0
        for batch in 0..<20 {
            let items = try (0..<500).map { i in
                try prepared(track("m\(batch)-\(i)", properties: ["note": .string("event \(batch) \(i) " + String(repeating: "z", count: 200))]))
            }
            n += try log.append(items).count
        }
        #expect(n == 10_000)
        #expect(log.environment.info.mapSize > 1 << 20)
        let report = try log.verify()
        #expect(report.ok, "\(report.problems)")
        #expect(report.events == 10_000)
    }

    @Test func retrainsTheDictionaryOnDriftAndOldRecordsStayReadable() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path, options: LogOptions(trainAfter: 300, retrainBelow: 0.9))
        // Phase 1: product views; the first dictionary is trained on them.
        for b in 0..<4 {
            try log.append((0..<300).map { i in try prepared(track("a\(b)-\(i)", properties: ["product_id": .string("p\(i % 40)"), "category": "shoes"])) })
        }
        #expect(log.dictionaries.count == 1)
        // Phase 2: very different messages; the ratio drops and a new dictionary is trained.
        for b in 0..<12 {
            try log.append((0..<300).map { i in
                var m = track("b\(b)-\(i)", event: "Support Ticket Opened", properties: [
                    "ticket_subject": .string(["Refund for order", "Where is my parcel", "Password reset", "Damaged item"][i % 4] + " #\(i)"),
                    "priority": .string(["low", "normal", "urgent"][i % 3]), "agent": .string("agent-\(i % 7)"),
                    "tags": ["shipping", "billing", .string("queue-\(i % 5)")]])
                m["context"] = ["channel": "support", "library": ["name": "zendesk-bridge", "version": "4.1.0"]]
                return try prepared(m)
            })
        }
        #expect(log.dictionaries.count >= 2)
        // Reopen: every record, old and new, decodes with its own dictionary.
        let reopened = try EventLog(directory: dir.path)
        let report = try reopened.verify()
        #expect(report.ok, "\(report.problems)")
        #expect(report.events == 4800)
        #expect(try reopened.event(seq: 1)?.messageId == "a0-0")
    }

    /// As a server runs it: dictionaries trained on a thread of their own while the writer goes
    /// on; each is stored and used from the first commit after it is ready.
    @Test func trainsInTheBackgroundWhileTheWriterGoesOn() throws {
        let dir = TempDir()
        var options = LogOptions(trainAfter: 300, retrainBelow: 0.9)
        options.trainInBackground = true
        let log = try EventLog(directory: dir.path, options: options)
        func views(_ b: Int) throws -> [PreparedEvent] {
            try (0..<300).map { i in try prepared(track("a\(b)-\(i)", properties: ["product_id": .string("p\(i % 40)"), "category": "shoes"])) }
        }
        for b in 0..<4 { try log.append(try views(b)) }
        try log.finishTraining()
        #expect(log.dictionaries.count == 1)
        // Records committed from now on use it.
        try log.append(try views(4))
        let last = try log.environment.read { tx in try tx.withCursor(log.events) { c in try c.last().map { Array($0.value) } } }
        #expect(RecordCodec.dictionaryID(of: try #require(last)) == log.dictionaries.latest!.id)
        // Different messages: the ratio drifts, a second dictionary is trained in the background.
        for b in 0..<12 {
            try log.append((0..<300).map { i in
                var m = track("b\(b)-\(i)", event: "Support Ticket Opened", properties: [
                    "ticket_subject": .string(["Refund for order", "Where is my parcel", "Password reset", "Damaged item"][i % 4] + " #\(i)"),
                    "priority": .string(["low", "normal", "urgent"][i % 3]), "agent": .string("agent-\(i % 7)")])
                m["context"] = ["channel": "support", "library": ["name": "zendesk-bridge", "version": "4.1.0"]]
                return try prepared(m)
            })
        }
        try log.finishTraining()
        #expect(log.dictionaries.count >= 2)
        let report = try EventLog(directory: dir.path).verify()
        #expect(report.ok, "\(report.problems)")
        #expect(report.events == 17 * 300)
    }

    @Test func compressesWithTheTrainedDictionary() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path, options: LogOptions(trainAfter: 500))
        for b in 0..<6 {
            try log.append((0..<500).map { i in try prepared(track("m\(b)-\(i)", user: "u\(i)", properties: ["product_id": .string("p\(i % 50)"), "price": 9.99, "category": "shoes"])) })
        }
        let stats = try log.stats()
        #expect(stats.dictionaries == 1)
        #expect(stats.compression_ratio > 2.0, "ratio \(stats.compression_ratio)")
    }
}

@Suite struct Tailing {
    @Test func tailWakesOnCommit() async throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        try log.append([try prepared(track("m1"))])
        var iterator = log.tail(from: 1).makeAsyncIterator()
        let first = try await iterator.next()
        #expect(first?.map(\.seq) == [1])
        let writer = Task {
            try await Task.sleep(for: .milliseconds(50))
            try log.append([try prepared(track("m2")), try prepared(track("m3"))])
        }
        let second = try await iterator.next()
        #expect(second?.map(\.seq) == [2, 3])
        try await writer.value
    }

    @Test func waitForSeqTimesOutWhenNothingArrives() async throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        #expect(await log.waitForSeq(1, timeout: .milliseconds(50)) == false)
        try log.append([try prepared(track("m1"))])
        #expect(await log.waitForSeq(1, timeout: .milliseconds(50)) == true)
    }

    @Test func aBlockedThreadWakesOnTheCommitItWaitsFor() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        #expect(log.waitForSeq(1, blockingFor: .milliseconds(20)) == false, "nothing committed: times out")
        // A thread blocks for seq 2 with a long timeout; two commits later it is awake, long
        // before the timeout.
        let woke = DispatchSemaphore(value: 0)
        let result = Box<Bool?>(nil)
        Thread.detachNewThread {
            result.value = log.waitForSeq(2, blockingFor: .seconds(60))
            woke.signal()
        }
        try log.append([try prepared(track("m1"))])
        #expect(woke.wait(timeout: .now() + .milliseconds(50)) == .timedOut, "seq 1 does not wake a wait for seq 2")
        try log.append([try prepared(track("m2"))])
        #expect(woke.wait(timeout: .now() + .seconds(10)) == .success)
        #expect(result.value == true)
        #expect(log.waitForSeq(2, blockingFor: .zero) == true, "already committed: no wait")
    }
}

/// A value shared with a thread (read after it signals).
private final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}

@Suite struct GroupCommit {
    @Test func concurrentCallersShareCommitsAndEachGetsItsOwnSeqs() async throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        let commits = Counter()
        let ingestor = Ingestor(log: log, onCommit: { _ in commits.add(1) })
        let outcomes = try await withThrowingTaskGroup(of: [AppendOutcome].self) { group in
            for c in 0..<64 {
                group.addTask { try await ingestor.submit((0..<10).map { i in try prepared(track("c\(c)-\(i)")) }) }
            }
            var all: [[AppendOutcome]] = []
            for try await o in group { all.append(o) }
            return all
        }
        let seqs = outcomes.flatMap { $0.map(\.seq) }.sorted()
        #expect(seqs == Array(1...640))
        for o in outcomes { #expect(zip(o, o.dropFirst()).allSatisfy { $0.seq + 1 == $1.seq }) }  // each caller's seqs are contiguous
        #expect(commits.value < 64, "expected shared commits, got \(commits.value)")
    }

    @Test func aCommitTakesAtMostMaxBatchEventsUnlessOneCallerHasMore() async throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        let sizes = Box<[Int]>([]), lock = NSLock()
        let ingestor = Ingestor(log: log, maxBatch: 16, onCommit: { r in lock.withLock { sizes.value.append(r.appended) } })
        try await withThrowingTaskGroup(of: Void.self) { group in
            for c in 0..<40 {
                let n = c == 7 ? 50 : 6
                group.addTask { _ = try await ingestor.submit((0..<n).map { i in try prepared(track("m\(c)-\(i)")) }) }
            }
            try await group.waitForAll()
        }
        let seen = lock.withLock { sizes.value }
        let total = seen.reduce(0, +)
        #expect(total == 39 * 6 + 50)
        #expect(seen.allSatisfy { $0 <= 16 || $0 == 50 }, "\(seen)")
        #expect(seen.contains(50), "the caller with more than maxBatch is committed alone, whole")
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int) { lock.withLock { n += k } }
    var value: Int { lock.withLock { n } }
}
