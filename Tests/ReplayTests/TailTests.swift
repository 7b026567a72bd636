import EventLog
import Foundation
@testable import Projections
import Testing

/// The live tail: pipelined (profiles fold batch k+1 while segments and KPIs fold and commit
/// batch k), on threads of its own, while events keep arriving.
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
        let caughtUp = try eventually(.seconds(60)) { views.runner.appliedSeq >= last }
        tail.cancel()
        try? await tail.value
        #expect(caughtUp, "the tail applied \(views.runner.appliedSeq) of \(last)")

        let batches = reports.get()
        #expect(batches.reduce(0) { $0 + $1.events } == appended, "every event folded once")
        #expect(batches.count > 1 && batches.allSatisfy { $0.events <= LiveViews.tailBatch }, "batches of at most \(LiveViews.tailBatch)")
        #expect(zip(batches, batches.dropFirst()).allSatisfy { $0.lastSeq < $1.lastSeq }, "committed in order")
        // Byte for byte what a replay of the same log (with the same batch ends) builds.
        let report = try s.rebuilder().verify()
        for e in report.entries { #expect(e.equal, "\(e.projection): \(e.differences)") }
        #expect(report.entries.count == ProjectionSet.names.count)
    }

    /// (A time limit, not a timed assertion: with the test runner's pool busy, resuming the
    /// awaiting task itself can take seconds.)
    @Test(.timeLimit(.minutes(1))) func theTailStopsWhenCancelledWhileWaiting() async throws {
        let s = try Scratch()
        try s.append(messages(10))
        let views = try s.liveViews()
        let tail = Task { try await views.run() }
        #expect(try eventually { views.runner.appliedSeq == 10 })
        // Idle, blocked waiting for a commit that never comes: cancellation still ends it, and
        // the views stay usable (a later tail picks up where it stopped).
        tail.cancel()
        try await tail.value
        try s.append(messages(5, prefix: "late"))
        let again = Task { try await views.run() }
        #expect(try eventually { views.runner.appliedSeq == 15 })
        again.cancel()
        try await again.value
    }
}
