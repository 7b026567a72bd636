import EventLog
import Foundation
@testable import Projections
import Testing

/// The live tail: pipelined (profiles fold batch k+1 while segments and KPIs fold and commit
/// batch k), on threads of its own, while events keep arriving. (The waits here suspend —
/// `eventuallyAsync` — rather than block: blocked, two tests running side by side hold both of
/// the concurrency pool's threads on this 2-core machine, and the tasks that start the tails
/// never run.)
@Suite struct TailTests {
    @Test func thePipelinedTailUnderConcurrentAppendsEqualsAReplay() async throws {
        let s = try Scratch()
        let views = try s.liveViews()
        let reports = Locked2<[BatchReport]>([])
        let tail = Task { try await views.run { r in reports.set(reports.get() + [r]) } }
        // Commits of 150 events (the shared customers link, merge and order across them) while
        // the tail folds: more than one tail batch each time it falls behind.
        var appended = 0
        for chunk in 0..<40 {
            try s.append(messages(150, prefix: chunk % 2 == 0 ? "c" : "d"))
            appended += 150
        }
        let last = s.log.lastSeq
        #expect(last == UInt64(appended))
        let caughtUp = try await eventuallyAsync(.seconds(60)) { views.runner.appliedSeq >= last }
        tail.cancel()
        try? await tail.value
        #expect(caughtUp, "the tail applied \(views.runner.appliedSeq) of \(last)")

        let batches = reports.get()
        #expect(batches.reduce(0) { $0 + $1.events } == appended, "every event folded once")
        #expect(batches.count > 1 && batches.allSatisfy { $0.events <= LiveViews.tailBacklogBatch }, "batches of at most \(LiveViews.tailBacklogBatch)")
        #expect(zip(batches, batches.dropFirst()).allSatisfy { $0.lastSeq < $1.lastSeq }, "committed in order")
        // Byte for byte what a replay of the same log (with the same batch ends) builds.
        let report = try s.rebuilder().verify()
        for e in report.entries { #expect(e.equal, "\(e.projection): \(e.differences)") }
        #expect(report.entries.count == ProjectionSet.names.count)
    }

    /// Starts `views`' tail (caught up first), collecting its batch reports, and returns once
    /// it has folded one new event — so it is running — with that event's seq.
    func runningTail(_ views: LiveViews, _ s: Scratch) async throws
        -> (tail: Task<Void, Error>, reports: Locked2<[BatchReport]>, first: UInt64) {
        try views.catchUp()
        let reports = Locked2<[BatchReport]>([])
        let tail = Task { try await views.run { r in reports.set(reports.get() + [r]) } }
        try s.append(messages(1, prefix: "first"))
        let first = s.log.lastSeq
        #expect(try await eventuallyAsync(.seconds(60)) { views.runner.appliedSeq >= first })
        return (tail, reports, first)
    }

    /// One commit far larger than a batch, onto a tail that has caught up: its first batch
    /// is a small one (those events visible soonest), the rest of it is read as a backlog, in
    /// larger batches.
    @Test func theRestOfALargeCommitIsFoldedInLargerBatches() async throws {
        let s = try Scratch()
        try s.append(messages(10))
        let views = try s.liveViews()
        let (tail, reports, first) = try await runningTail(views, s)
        let n = 4 * LiveViews.tailBacklogBatch
        try s.append(messages(n, prefix: "big"))
        let last = s.log.lastSeq
        #expect(last == first + UInt64(n))
        #expect(try await eventuallyAsync(.seconds(60)) { views.runner.appliedSeq >= last })
        tail.cancel()
        try? await tail.value
        let batches = reports.get().filter { $0.lastSeq > first }
        #expect(batches.reduce(0) { $0 + $1.events } == n, "every event folded once")
        #expect(batches.first?.events == LiveViews.tailBatch, "the first batch of the commit: \(batches.map(\.events))")
        #expect(batches.allSatisfy { $0.events <= LiveViews.tailBacklogBatch })
        #expect(batches.dropFirst().contains { $0.events > LiveViews.tailBatch }, "the rest in larger batches: \(batches.map(\.events))")
        let report = try s.rebuilder().verify()
        for e in report.entries { #expect(e.equal, "\(e.projection): \(e.differences)") }
    }

    /// Single events committed one after another: with a linger, the tail folds many commits in
    /// one batch (one views commit for them), and still folds at once the first event after a
    /// pause longer than the linger. (How long that event waited is its batch's own
    /// commit-to-visible lag, measured by the tail: the test's task can be resumed seconds late
    /// while the runner's pool is busy, and so can the task that starts the tail.)
    @Test func aLingeringTailFoldsQuickSmallCommitsTogetherButNotTheFirstAfterAPause() async throws {
        let s = try Scratch()
        try s.append(messages(10))
        let linger = Duration.seconds(3)
        let views = try LiveViews(dataDirectory: s.dir, log: s.log, tailLinger: linger)
        let (tail, reports, first) = try await runningTail(views, s)
        // Then 40 single-event commits in quick succession (the log's commits take
        // milliseconds, the linger seconds): after the first of them, folded together.
        for m in messages(40, prefix: "burst") { try s.append([m]) }
        let burst = s.log.lastSeq
        #expect(burst == first + 40)
        #expect(try await eventuallyAsync(.seconds(60)) { views.runner.appliedSeq >= burst })
        // A pause longer than the linger (the pause is what is tested, not a wait for a
        // condition), then one event: it does not wait for company.
        try await Task.sleep(for: linger + .milliseconds(500))
        try s.append(messages(1, prefix: "after"))
        let after = s.log.lastSeq
        #expect(try await eventuallyAsync(.seconds(60)) { views.runner.appliedSeq >= after })
        tail.cancel()
        try? await tail.value
        let all = reports.get()
        let lingerMicros = linger.components.seconds * 1_000_000
        let alone = try #require(all.first { $0.lastSeq == after }, "the event after the pause is folded in a batch of its own")
        #expect(alone.events == 1)
        #expect(alone.lagMicros < lingerMicros, "the first event after a pause waited \(alone.lagMicros) µs")
        let batches = all.filter { $0.lastSeq > first && $0.lastSeq <= burst }
        #expect(batches.reduce(0) { $0 + $1.events } == 40, "every event folded once")
        #expect(batches.count <= 3, "40 quick commits folded in \(batches.count) batches: \(batches.map(\.events))")
        let report = try s.rebuilder().verify()
        for e in report.entries { #expect(e.equal, "\(e.projection): \(e.differences)") }
    }

    /// (A time limit, not a timed assertion: with the test runner's pool busy, resuming the
    /// awaiting task itself can take seconds.)
    @Test(.timeLimit(.minutes(1))) func theTailStopsWhenCancelledWhileWaiting() async throws {
        let s = try Scratch()
        try s.append(messages(10))
        let views = try s.liveViews()
        let tail = Task { try await views.run() }
        #expect(try await eventuallyAsync { views.runner.appliedSeq == 10 })
        // Idle, blocked waiting for a commit that never comes: cancellation still ends it, and
        // the views stay usable (a later tail picks up where it stopped).
        tail.cancel()
        try await tail.value
        try s.append(messages(5, prefix: "late"))
        let again = Task { try await views.run() }
        #expect(try await eventuallyAsync { views.runner.appliedSeq == 15 })
        again.cancel()
        try await again.value
    }

    @Test func staleViewsServeWhileANewGenerationIsBuiltThenTheTailSwitchesToIt() async throws {
        let s = try Scratch()
        try s.append(messages(3000))
        let first = try s.liveViews().generation.name
        // Other identity rules: the live views are stale; the tail serves them (and keeps them
        // current) while the new generation is built beside, then switches.
        var rules = IdentityRules.default
        rules.blocked.append("c-user-1")
        let views = try LiveViews(dataDirectory: s.dir, log: s.log, set: ProjectionSet(rules: rules))
        #expect(try views.isStale())
        let tail = Task { try await views.run() }
        for chunk in 0..<4 { try s.append(messages(100, prefix: "late\(chunk)")) }
        let last = s.log.lastSeq
        let switched = try await eventuallyAsync(.seconds(60)) { views.generation.name != first && views.runner.appliedSeq >= last }
        tail.cancel()
        try? await tail.value
        #expect(switched, "serving \(views.generation.name) at \(views.runner.appliedSeq) of \(last)")
        #expect(s.store.current() == views.generation.name)
        #expect(try views.profiles.resolve(Identifier.parse("user_id:c-user-1")!) == nil, "the new rules apply")
        #expect(try views.profiles.resolve(Identifier.parse("user_id:late3-user-2")!) != nil, "events of the switch are in")
        let report = try s.rebuilder().verify()
        for e in report.entries { #expect(e.equal, "\(e.projection): \(e.differences)") }
    }

    /// `realtime`: real time (where permitted, else nice −10) while the tail keeps up, nice −10
    /// once it has fetched `behindBatches` full batches in a row, real time again at the first
    /// batch that is not full; `raised` never goes real time. On a thread of its own, put back
    /// to the default scheduling at the end.
    @Test func theRealtimeTailDropsToRaisedWhileBehindAndReturnsOnceCaughtUp() throws {
        let seen = Locked2<[String]>([])
        let thread = Thread {
            let tid = ThreadPriority.currentThreadID
            func note(_ p: TailPriority) { seen.set(seen.get() + ["\(p.current!) \(ThreadPriority.current(tid: tid))"]) }
            let p = TailPriority(.realtime)
            p.register("test-tail", rank: 2)
            let permitted = p.current == .realtime
            note(p)
            for _ in 0..<TailPriority.behindBatches - 1 { p.paced(fetched: 256, limit: 256) }
            note(p)  // not behind yet
            p.paced(fetched: 256, limit: 256)
            note(p)  // behind
            p.paced(fetched: 256, limit: 256)
            note(p)  // still behind
            p.paced(fetched: 12, limit: 256)
            note(p)  // caught up
            // A batch read from a backlog, twice the limit, counts as two full ones.
            for _ in 0..<TailPriority.behindBatches / 2 - 1 { p.paced(fetched: 512, limit: 256) }
            note(p)  // not behind yet
            p.paced(fetched: 512, limit: 256)
            note(p)  // behind
            p.paced(fetched: 12, limit: 256)
            note(p)  // caught up
            p.demote()
            note(p)  // before an adoption's catch-up
            let q = TailPriority(.raised)
            q.register("test-tail", rank: 1)
            q.paced(fetched: 0, limit: 256)
            note(q)
            ThreadPriority.apply(.normal, tid: tid)
            seen.set(seen.get() + [permitted ? "permitted" : "refused", "\(ThreadPriority.current(tid: tid))"])
        }
        thread.start()
        #expect(try eventually { seen.get().count == 12 })
        let s = seen.get()
        let top = s[10] == "permitted" ? "realtime realtime" : "raised raised"
        #expect(s[0] == top && s[1] == top, "\(s)")
        #expect(s[2] == "raised raised" && s[3] == "raised raised", "\(s)")
        #expect(s[4] == top, "\(s)")
        #expect(s[5] == top && s[6] == "raised raised" && s[7] == top, "\(s)")
        #expect(s[8] == "raised raised", "\(s)")
        #expect(s[9] == "raised raised", "\(s)")
        #expect(s[11] == "normal", "\(s)")
    }

    /// The server's tail under `realtime`: its four threads (tail, committer, helper, reader) run
    /// under one scheduling, and the views equal a replay.
    @Test func aRealtimeTailFoldsLikeAReplay() async throws {
        let s = try Scratch()
        let views = try LiveViews(dataDirectory: s.dir, log: s.log, tailScheduling: .realtime)
        let tail = Task { try await views.run() }
        for chunk in 0..<6 { try s.append(messages(300, prefix: "rt\(chunk)")) }
        let last = s.log.lastSeq
        let caughtUp = try await eventuallyAsync(.seconds(60)) { views.runner.appliedSeq >= last }
        let level = try #require(views.priority.current)
        #expect(level == .realtime || level == .raised, "\(level)")
        let threads = views.priority.threadIDs
        #expect(threads.count == 4 && threads.allSatisfy { ThreadPriority.current(tid: $0) == level },
                "\(threads.map { ThreadPriority.current(tid: $0) }) against \(level)")
        // By stage: the committer and its helper first, then the fold, then the reader (all at
        // priority 1 where the limit allows no more).
        let ranks = threads.map { ThreadPriority.realtimeRank(tid: $0) }.sorted()
        if level == .realtime { #expect(ranks == [1, 2, 3, 3] || ranks == [1, 1, 1, 1], "\(ranks)") }
        let names = threads.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
        #expect(Set(names.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }) == ["views-tail", "views-commit", "views-helper", "views-reader"])
        tail.cancel()
        try? await tail.value
        #expect(caughtUp, "the tail applied \(views.runner.appliedSeq) of \(last)")
        let report = try s.rebuilder().verify()
        for e in report.entries { #expect(e.equal, "\(e.projection): \(e.differences)") }
    }
}
