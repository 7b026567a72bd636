import Foundation
import JSONCore
import Testing
@testable import EventLog

/// The newest appended events kept for the live tail: the same events the log's records
/// give, and never a skip over what another process appended in between.
@Suite struct RecentEventsBehaviour {
    func event(_ seq: UInt64) -> Event { Event(seq: seq, type: .track, timestamp: Int64(seq), receivedAt: 0, payload: [UInt8(seq % 256)]) }

    @Test func servesARunOfConsecutiveSeqsFromTheOneAskedForAndForgetsTheOldest() {
        let r = RecentEvents(capacity: 10)
        r.append((1...4).map(event))
        r.append((9...12).map(event))  // 5–8 appended by someone else
        #expect(r.take(from: 2, limit: 100).map(\.seq) == [2, 3, 4], "stops at the gap")
        #expect(r.take(from: 5, limit: 100).isEmpty, "not kept: read from the log")
        #expect(r.take(from: 9, limit: 2).map(\.seq) == [9, 10])
        #expect(r.take(from: 13, limit: 1).isEmpty)
        r.append((13...20).map(event))
        #expect(r.count == 10)
        #expect(r.take(from: 4, limit: 100).isEmpty, "the oldest left first")
        #expect(r.take(from: 11, limit: 100).map(\.seq) == Array(11...20))
        r.append((21...60).map(event))  // more than it holds at once
        #expect(r.count == 10 && r.take(from: 51, limit: 100).map(\.seq) == Array(51...60))
    }

    @Test func followingEventsEqualTheRecordsEvenAroundAnotherProcesssAppends() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path + "/data/log")
        log.keepRecentEvents(capacity: 1_000)
        try log.append((0..<40).map { try prepared(track("a\($0)", user: "u\($0 % 7)")) })
        // Another process appends 25 events (seqs 41–65) meanwhile.
        try appendFromAnotherProcess((0..<25).map { track("theirs\($0)") }, dir: dir)
        try log.append((0..<30).map { try prepared(track("b\($0)", user: "u\($0 % 5)", properties: ["n": .int(Int64($0))])) })
        #expect(log.lastSeq == 95)

        // Read along as a tail does, in batches of 16: every event once, in order, equal to the records'.
        var got: [Event] = []
        var next: UInt64 = 1
        while next <= 95 {
            let batch = try log.followingEvents(from: next, limit: 16)
            try #require(!batch.isEmpty)
            got += batch
            next = batch.last!.seq + 1
        }
        #expect(got == (try log.events(from: 1, limit: 1_000)))
        #expect(got.map(\.seq) == Array(1...95))
        // What came from memory: this process's events only.
        #expect(try log.followingEvents(from: 41, limit: 5) == (try log.events(from: 41, limit: 5)))
        #expect(try log.followingEvents(from: 30, limit: 100).map(\.seq) == Array(30...40), "stops where the other process's begin")
    }
}
