import EventLog
import Foundation
import JSONCore
import Testing

@Suite struct Compaction {
    /// A log where customer "a" (jane@example.com) and others interleave; returns a's seqs.
    func makeLog(_ dir: TempDir) throws -> (EventLog, Set<UInt64>) {
        let log = try EventLog(directory: dir.path + "/log", options: LogOptions(trainAfter: 200))
        var aSeqs: Set<UInt64> = []
        for b in 0..<10 {
            let items = try (0..<100).map { i -> PreparedEvent in
                let isA = i % 5 == 0
                var m = track("m\(b)-\(i)", user: isA ? "jane-user" : "u\(i)")
                m["context"] = ["channel": "web", "traits": ["email": .string(isA ? "jane@example.com" : "c\(i)@shop.test")]]
                return try prepared(m)
            }
            let outcomes = try log.append(items)
            for (n, o) in outcomes.enumerated() where n % 5 == 0 { aSeqs.insert(o.seq) }
        }
        return (log, aSeqs)
    }

    @Test func dropsOneCustomersRecordsKeepingEveryOtherSeq() throws {
        let dir = TempDir()
        let (log, aSeqs) = try makeLog(dir)
        var plan = CompactionPlan()
        plan.dropSeqs = aSeqs
        plan.forbidden = ["jane@example.com", "jane-user"]
        let report = try log.compact(into: dir.path + "/new", plan: plan)
        #expect(report.droppedErased == aSeqs.count)
        #expect(report.kept == 1000 - aSeqs.count)

        let compacted = try EventLog(directory: dir.path + "/new")
        let v = try compacted.verify()
        #expect(v.ok, "\(v.problems)")
        #expect(v.erased == aSeqs.count)
        var seen: [UInt64] = []
        try compacted.forEach { e in
            seen.append(e.seq)
            #expect(!e.body.jsonString.contains("jane"))
            return true
        }
        #expect(seen == (1...1000).filter { !aSeqs.contains(UInt64($0)) }.map { UInt64($0) })
        // No trace anywhere in the file: not in records, the index, dead letters or dictionaries.
        let raw = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/new/data.mdb"))
        #expect(raw.range(of: Data("jane@example.com".utf8)) == nil)
        #expect(raw.range(of: Data("jane-user".utf8)) == nil)
    }

    @Test func seqsAreNeverReusedAfterTheNewestRecordsWereDropped() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path + "/log")
        try log.append((1...10).map { try prepared(track("m\($0)")) })
        var plan = CompactionPlan()
        plan.dropSeqs = [9, 10]
        _ = try log.compact(into: dir.path + "/new", plan: plan)
        try EventLog.replace(dir.path + "/log", with: dir.path + "/new")
        let reopened = try EventLog(directory: dir.path + "/log")
        #expect(try reopened.append([try prepared(track("m11"))]) == [.appended(11)])
        #expect(try reopened.verify().ok)
        // A retry of a dropped message is a new event now (its old record is gone).
        #expect(try reopened.seq(source: "web", messageId: "m9") == nil)
    }

    @Test func retentionDropsExpiredEventsByTypeOrName() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path + "/log")
        try log.append([
            try prepared(track("old-view", event: "Product Viewed", at: "2024-01-01T00:00:00Z")),
            try prepared(track("old-order", event: "Order Completed", at: "2024-01-01T00:00:00Z", properties: ["order_id": "o1", "total": 10])),
            try prepared(track("new-view", event: "Product Viewed", at: "2025-02-27T00:00:00Z")),
        ])
        var plan = CompactionPlan()
        plan.now = Timestamp.parse("2025-03-01T00:00:00Z")!
        plan.retention = ["Product Viewed": 30 * 86_400_000_000]
        let report = try log.compact(into: dir.path + "/new", plan: plan)
        #expect(report.droppedExpired == 1)
        let kept = try EventLog(directory: dir.path + "/new").events(from: 1, limit: 10).map(\.messageId)
        #expect(kept == ["old-order", "new-view"])
    }
}
