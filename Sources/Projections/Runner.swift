import EventLog
import Foundation
import LMDB

/// What one applied batch reports: how far the views are, how long its events took from
/// their commit to being visible, failures.
public struct BatchReport: Sendable {
    public var events: Int
    public var lastSeq: UInt64
    /// Commit-to-visible time of the batch's oldest event, in microseconds (the batch's max).
    public var lagMicros: Int64
    public var failures: [ProjectionFailure]
    /// Events applied per projection name.
    public var perProjection: [String: Int]
    /// Commit-to-visible time of each event of the batch, in microseconds: from its durable
    /// commit when this process made it, else from its receipt (`receivedAt`, earlier).
    public var eventLagsMicros: [Int64] = []
}

/// Folds the log into one generation: catches up from each projection's checkpoint, then
/// (in the server) tails the log. Batches are decoded on one thread while the previous batch
/// is folded on another, so a rebuild uses both cores. Not reentrant: one runner per
/// generation.
public final class ProjectionRunner: @unchecked Sendable {
    public let log: EventLog
    public let generation: ViewGeneration
    public let batchSize: Int
    private let applied: AppliedSeq

    public init(log: EventLog, generation: ViewGeneration, batchSize: Int = 16384) throws {
        self.log = log
        self.generation = generation
        self.batchSize = batchSize
        applied = AppliedSeq(try generation.appliedSeq())
        for p in generation.projections { p.attach(log: log) }
    }

    /// File-backed resident memory (the log's and views' mapped pages) above which a fold lets
    /// go of them.
    static let mappedBudget = 512 << 20

    /// The seq every projection has applied.
    public var appliedSeq: UInt64 { applied.value }

    /// Waits until the views have applied `seq`, or `timeout` passes; returns whether they have.
    public func waitForApplied(_ seq: UInt64, timeout: Duration) async -> Bool {
        await applied.wait(for: seq, timeout: timeout)
    }

    /// Applies every event up to `through` (default: the log's end as of now). Returns the
    /// number of events folded. `progress` gets each batch's report.
    @discardableResult
    public func catchUp(through: UInt64 = .max, progress: ((BatchReport) -> Void)? = nil) throws -> Int {
        let start = try generation.projections.map { try generation.checkpoint($0.name) }.min() ?? 0
        var total = 0
        try fold(from: start, through: min(through, log.lastSeq), onBatch: { _, report in
            total += report.events
            progress?(report)
        })
        return total
    }

    /// Folds the events with `from` < seq ≤ `end`: a reader thread reads, decodes and works
    /// ahead on batch k+1 while batch k folds and commits (both cores). `until` keeps only events
    /// with an event time at or before it; `boundaries` (a live generation's batch ends) make
    /// every batch end exactly there; `shouldStop` is asked before each batch. `onBatch` gets
    /// the last seq scanned and the batch's report. Returns how many seqs were scanned.
    @discardableResult
    public func fold(from: UInt64, through end: UInt64, until: Micros? = nil, boundaries: [UInt64]? = nil,
                     shouldStop: () -> Bool = { false }, onBatch: (UInt64, BatchReport) -> Void = { _, _ in }) throws -> UInt64 {
        guard end > from else { return 0 }
        enum Item { case batch([Event], UInt64), end, failure(Error) }
        let queue = BlockingQueue<Item>(capacity: 3)
        let batch = batchSize
        let projections = UncheckedBox(generation.projections)  // computeAhead is thread-safe
        let cuts = (boundaries ?? []).filter { $0 > from && $0 < end } + [end]
        let views = generation.environment
        let reader = Thread { [log] in
            do {
                var next = from + 1
                var cut = 0
                while next <= end {
                    while boundaries != nil && cut < cuts.count - 1 && cuts[cut] < next { cut += 1 }
                    let stop = boundaries != nil ? cuts[cut] : end
                    var events: [Event] = []
                    events.reserveCapacity(batch)
                    var scanned: UInt64 = 0
                    var count = 0
                    try log.forEach(from: next, through: stop, chunk: batch) { e in
                        scanned = e.seq
                        count += 1
                        if until.map({ e.timestamp <= $0 }) ?? true { events.append(e) }
                        return boundaries != nil || count < batch
                    }
                    if boundaries != nil && count == 0 && stop < end { next = stop + 1; continue }
                    if count == 0 { break }
                    next = scanned + 1
                    // A long fold reads the whole log and much of the views through their maps:
                    // let go of those pages when they pass a budget, so the resident set stays
                    // bounded whatever the log's length (the page cache still holds them).
                    if ResidentMemory.fileBacked() > Self.mappedBudget {
                        log.releaseMappedPages()
                        views.releaseMappedPages()
                    }
                    for p in projections.value { p.computeAhead(events) }
                    if !queue.put(.batch(events, scanned)) { return }
                }
                _ = queue.put(.end)
            } catch {
                _ = queue.put(.failure(error))
            }
        }
        reader.stackSize = 4 << 20
        reader.start()
        defer { queue.close() }
        var last = from
        let g = generation
        let checkpoints = try g.environment.read { tx in try g.projections.map { try g.checkpoint($0.name, tx) } }
        guard g.projections.count > 1, Set(checkpoints).count == 1 else {
            // One projection, or projections at different checkpoints: one batch at a time.
            while true {
                switch queue.take() {
                case .end: return last - from
                case .failure(let e): throw e
                case .batch(let events, let scanned):
                    if shouldStop() { throw RebuildStopped() }
                    let report = try apply(events)
                    last = scanned
                    onBatch(scanned, report)
                }
            }
        }

        var pipeline = Pipeline(runner: self, finisher: Finisher(), expected: checkpoints[0])
        func done(_ scanned: UInt64, _ report: BatchReport) {
            last = scanned
            onBatch(scanned, report)
        }
        do {
            while true {
                switch queue.take() {
                case .end:
                    try pipeline.drain(done)
                    return last - from
                case .failure(let e): throw e
                case .batch(let events, let scanned):
                    if shouldStop() {
                        try pipeline.drain(done)
                        throw RebuildStopped()
                    }
                    let slice = events[events.partitioningIndex { $0.seq > pipeline.expected }...]
                    if slice.isEmpty {
                        try pipeline.drain(done)
                        done(scanned, BatchReport(events: 0, lastSeq: applied.value, lagMicros: 0, failures: [], perProjection: [:]))
                    } else {
                        try pipeline.push(slice, tag: scanned, done: done)
                    }
                }
            }
        } catch {
            pipeline.abandon()
            guard error is PipelineConflict else { throw error }
            // Another process applied batches meanwhile: go on from where the views are now.
            queue.close()
            let now = try g.appliedSeq()
            return (now - from) + (try fold(from: now, through: end, until: until, boundaries: boundaries, shouldStop: shouldStop, onBatch: onBatch))
        }
    }

    /// What `fold` and `follow` share: the first projection (profiles) folds batch k+1 on the
    /// caller's thread, on top of batch k's sealed changes, while `finisher` folds the others
    /// over batch k and commits it. One batch in flight: k+1 is sealed only once k is committed.
    /// `done` gets each committed batch's tag (the seq it was read through) and report.
    private struct Pipeline {
        let runner: ProjectionRunner
        let finisher: Finisher
        /// The seq every projection will have applied once the batch in flight commits.
        private(set) var expected: UInt64
        private var inFlight: UInt64?

        init(runner: ProjectionRunner, finisher: Finisher, expected: UInt64) {
            self.runner = runner
            self.finisher = finisher
            self.expected = expected
        }

        /// Folds `events` (all after `expected`, at least one) into the first projection, then
        /// seals them and hands them to the finisher once the batch before is committed.
        mutating func push(_ events: ArraySlice<Event>, tag: UInt64, done: (UInt64, BatchReport) -> Void) throws {
            let g = runner.generation
            let failures = try g.environment.read { tx in try g.projections[0].fold(events, tx) }
            try drain(done)
            for p in g.projections { p.seal() }
            let job = Batch(events: Array(events), work: g.projections.map { ($0, events) }, firstFailures: failures,
                            seen: Array(repeating: expected, count: g.projections.count))
            finisher.submit { [runner, helper = finisher.helper] in try runner.finish(job, helper: helper) }
            inFlight = tag
            expected = events.last!.seq
        }

        /// Waits for the batch in flight to commit and hands its report to `done`; throws
        /// `PipelineConflict` when another process moved a checkpoint meanwhile.
        mutating func drain(_ done: (UInt64, BatchReport) -> Void) throws {
            guard let tag = inFlight else { return }
            inFlight = nil
            guard let report = try finisher.wait() else { throw PipelineConflict() }
            // Here, between folds, not on the finisher: the next fold must read either the
            // sealed batch or views that hold it, never a snapshot from before its commit
            // without it.
            for p in runner.generation.projections { p.didCommit() }
            done(tag, report)
        }

        /// After a failure: lets the batch in flight end and drops every pending change.
        mutating func abandon() {
            if inFlight != nil { _ = try? finisher.wait() }
            inFlight = nil
            for p in runner.generation.projections { p.reset() }
        }
    }

    /// One batch through the runner: the events, each projection's share, the first one's
    /// failures (it folded already), and the checkpoints the fold saw.
    struct Batch: @unchecked Sendable {
        var events: [Event]
        var work: [(any Projection, ArraySlice<Event>)]
        var firstFailures: [ProjectionFailure]
        var seen: [UInt64]
    }

    /// Applies one batch of events (in seq order) to every projection not past them.
    @discardableResult
    public func apply(_ events: [Event]) throws -> BatchReport {
        guard !events.isEmpty else {
            return BatchReport(events: 0, lastSeq: applied.value, lagMicros: 0, failures: [], perProjection: [:])
        }
        let g = generation
        var work: [(any Projection, ArraySlice<Event>)] = []
        var seen: [UInt64] = []
        var firstFailures: [ProjectionFailure] = []
        do {
            try g.environment.read { tx in
                for p in g.projections {
                    let cp = try g.checkpoint(p.name, tx)
                    seen.append(cp)
                    let from = events.partitioningIndex { $0.seq > cp }
                    guard from < events.count else { continue }
                    work.append((p, events[from...]))
                }
                // The first projection (profiles) folds first; the ones after it read only its
                // results, not each other's, so they fold side by side on the other cores.
                guard let first = work.first else { return }
                firstFailures = try first.0.fold(first.1, tx)
            }
            for p in g.projections { p.seal() }
            if let report = try finish(Batch(events: events, work: work, firstFailures: firstFailures, seen: seen)) {
                for p in g.projections { p.didCommit() }
                return report
            }
        } catch {
            for p in g.projections { p.reset() }
            throw error
        }
        // Another process (a replay tool, a CLI query) applied these events since the fold
        // read the views: fold again from the new state.
        for p in g.projections { p.reset() }
        return try apply(events)
    }

    /// Folds the projections after the first over a sealed batch and commits every
    /// projection's changes with their checkpoints in one transaction (the caller then calls
    /// `didCommit` on its thread). Nil when another process
    /// moved a checkpoint since `seen` (nothing written; the caller resets and refolds).
    private func finish(_ batch: Batch, helper: WorkerThread? = nil) throws -> BatchReport? {
        let g = generation
        let work = batch.work
        var failures: [[ProjectionFailure]] = work.isEmpty ? [] : [batch.firstFailures]
        let rest = Array(work.dropFirst())
        if rest.count == 1 {
            failures.append(try g.environment.read { tx in try rest[0].0.fold(rest[0].1, tx) })
        } else if rest.count > 1, let helper {
            // The live tail: the second projection on the helper thread (scheduled like this
            // one), the others here; whichever thread finishes first then encodes the first
            // projection's sealed changes for the write (`prepareWrite`).
            let second = ParallelResults<[ProjectionFailure]>(count: 1)
            let done = DispatchSemaphore(value: 0)
            let job = UncheckedBox(rest[1])  // touched by the helper only until `done`
            let first = UncheckedBox(work[0].0)
            let claimed = Locked(false)
            @Sendable func prepareFirst() {
                if claimed.swap(true) == false { first.value.prepareWrite() }
            }
            helper.run {
                second.set(0, Result { try g.environment.read { tx in try job.value.0.fold(job.value.1, tx) } })
                job.value.0.prepareWrite()  // its own changes, on the thread that folded them
                prepareFirst()
                done.signal()
            }
            var mine: [Result<[ProjectionFailure], Error>] = []
            for (i, (p, slice)) in rest.enumerated() where i != 1 {
                mine.append(Result { try g.environment.read { tx in try p.fold(slice, tx) } })
            }
            prepareFirst()
            done.wait()
            let all = [mine[0]] + second.values + mine.dropFirst()
            for r in all { failures.append(try r.get()) }
        } else if rest.count > 1 {
            let results = ParallelResults<[ProjectionFailure]>(count: rest.count)
            let jobs = UncheckedBox(rest)  // each projection is touched by one thread only
            DispatchQueue.concurrentPerform(iterations: rest.count) { i in
                let (p, slice) = jobs.value[i]
                results.set(i, Result { try g.environment.read { tx in try p.fold(slice, tx) } })
            }
            for r in results.values { failures.append(try r.get()) }
        }
        let last = batch.events.last!
        let conflict: Bool = try g.environment.write { tx in
            for (i, p) in g.projections.enumerated() where try g.checkpoint(p.name, tx) != batch.seen[i] { return true }
            for (i, (p, _)) in work.enumerated() {
                try p.write(tx)
                try g.writeProgress(tx, p, seq: last.seq, failures: failures[i])
            }
            if !work.isEmpty { try g.recordBatchEnd(tx, last.seq) }
            return false
        }
        if conflict { return nil }
        applied.advance(to: try g.appliedSeq())
        let now = nowMicros()
        // From each event's durable commit when this process made it (else its receipt).
        let committed = log.commitMicros(batch.events.map(\.seq))
        let lags = batch.events.indices.map { max(0, now - (committed[$0] ?? batch.events[$0].receivedAt)) }
        var per: [String: Int] = [:]
        for (p, s) in work { per[p.name] = s.count }
        return BatchReport(events: batch.events.count, lastSeq: last.seq, lagMicros: lags.max() ?? 0, failures: failures.flatMap { $0 },
                           perProjection: per, eventLagsMicros: lags)
    }

    /// Tails the log until `stop` says so, on the calling thread, pipelined like a catch-up:
    /// the first projection (profiles) folds batch k+1 on top of batch k's sealed changes while
    /// `finisher` folds the others over batch k and commits it. Each batch is what the log
    /// holds beyond the last one, at most `limit` events; with nothing new it waits (blocking,
    /// up to 100 ms) for the next commit. `report` gets every committed batch's report, on
    /// the calling thread. Returns when `stop` is true, with every batch it folded committed.
    ///
    /// With a `reader` thread, the next batches are read and their stateless part computed
    /// there (`computeAhead`) while this thread folds: a third stage.
    func follow(limit: Int, backlogLimit: Int? = nil, finisher: Finisher, reader: WorkerThread? = nil, linger: Duration? = nil,
                stop: () -> Bool, paced: (Int) -> Void = { _ in }, report: (BatchReport) -> Void) throws {
        let g = generation
        // Projections at different checkpoints (or only one): a batch at a time until they meet.
        while !stop() {
            let checkpoints = try g.environment.read { tx in try g.projections.map { try g.checkpoint($0.name, tx) } }
            if g.projections.count > 1 && Set(checkpoints).count == 1 { break }
            let events = try log.events(from: (checkpoints.min() ?? 0) + 1, limit: limit)
            paced(events.count)
            if events.isEmpty {
                if g.projections.count > 1 { break }  // all at the log's end: equal as far as the log goes
                _ = log.waitForSeq((checkpoints.min() ?? 0) + 1, blockingFor: .milliseconds(100))
            } else {
                report(try apply(events))
            }
        }
        guard g.projections.count > 1, !stop() else { return }
        var pipeline = Pipeline(runner: self, finisher: finisher, expected: try g.appliedSeq())
        func done(_: UInt64, _ r: BatchReport) { report(r) }
        let ahead = reader.map { TailReader(log: log, projections: g.projections, after: pipeline.expected, limit: limit,
                                             backlogLimit: backlogLimit, thread: $0, linger: linger) }
        defer { ahead?.close() }
        do {
            while !stop() {
                let (events, waited) = try ahead?.next(waiting: .milliseconds(100)) ?? (log.events(from: pipeline.expected + 1, limit: limit), false)
                // A batch that waited for company was not behind, however full it got.
                paced(waited ? 0 : events.count)
                if let first = events.first, let last = events.last {
                    // The reader reads on from where this fold began; only a refold after a
                    // conflict moves `expected`, and that starts a new reader.
                    if first.seq <= pipeline.expected { throw PipelineConflict() }
                    try pipeline.push(events[...], tag: last.seq, done: done)
                } else {
                    try pipeline.drain(done)
                    if ahead == nil { _ = log.waitForSeq(pipeline.expected + 1, blockingFor: .milliseconds(100)) }
                }
            }
            try pipeline.drain(done)
        } catch {
            pipeline.abandon()
            guard error is PipelineConflict else { throw error }
            ahead?.close()
            // Another process applied batches meanwhile: go on from where the views are now.
            return try follow(limit: limit, backlogLimit: backlogLimit, finisher: finisher, reader: reader, linger: linger, stop: stop, paced: paced, report: report)
        }
    }

}

/// A seq that only grows, with waiters.
final class AppliedSeq: @unchecked Sendable {
    private let lock = NSLock()
    private var seq: UInt64
    private var waiters: [(UInt64, CheckedContinuation<Void, Never>)] = []

    init(_ seq: UInt64) { self.seq = seq }

    var value: UInt64 { lock.withLock { seq } }

    func advance(to s: UInt64) {
        let ready: [CheckedContinuation<Void, Never>] = lock.withLock {
            seq = max(seq, s)
            let (done, rest) = (waiters.filter { $0.0 <= seq }, waiters.filter { $0.0 > seq })
            waiters = rest
            return done.map(\.1)
        }
        for c in ready { c.resume() }
    }

    func wait(for target: UInt64, timeout: Duration) async -> Bool {
        if value >= target { return true }
        let deadline = ContinuousClock.now + timeout
        // Wake on advance, or at the deadline (a timer task resumes every waiter to recheck).
        let timer = Task { [weak self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            self?.wakeAll()
        }
        defer { timer.cancel() }
        while value < target && ContinuousClock.now < deadline {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let immediate: Bool = lock.withLock {
                    if seq >= target || ContinuousClock.now >= deadline { return true }
                    waiters.append((target, c))
                    return false
                }
                if immediate { c.resume() }
            }
        }
        return value >= target
    }

    private func wakeAll() {
        let all: [CheckedContinuation<Void, Never>] = lock.withLock {
            let w = waiters.map(\.1)
            waiters = []
            return w
        }
        for c in all { c.resume() }
    }
}

/// The live tail's reader: on its own thread, reads the batches after `after` as they are
/// committed and computes their stateless part (`computeAhead`), a few batches ahead of the fold.
final class TailReader: @unchecked Sendable {
    private enum Item { case batch([Event], waited: Bool), failure(Error) }
    private let queue = BlockingQueue<Item>(capacity: 2)
    private let closed = Locked(false)

    /// While commits are small (this read and the one before it found fewer than `limit`
    /// events) and come less than `linger` apart, a batch waits up to `linger` for more commits
    /// to join it (nil: never waits). The first batch after a pause goes at once, and so does
    /// the rest of a large commit.
    ///
    /// After a read that found `limit` events or more (a backlog: a group commit lands
    /// faster than batches of `limit` fold), the next read takes up to `backlogLimit`: the
    /// per-batch costs (a write transaction, each touched page copied, each touched profile
    /// encoded) are then paid once for more events. The first batch of a commit stays small,
    /// so its events are visible soonest.
    init(log: EventLog, projections: [any Projection], after: UInt64, limit: Int, backlogLimit: Int? = nil,
         thread: WorkerThread, linger: Duration? = nil) {
        let backlogLimit = max(limit, backlogLimit ?? limit)
        let box = UncheckedBox(projections)  // computeAhead is thread-safe
        thread.run { [queue, closed] in
            var next = after + 1
            let decompressor = Decompressor()
            // Since when the reader found nothing to read (nil: it found events every time).
            var idle: ContinuousClock.Instant? = ContinuousClock.now
            // Whether the last read found fewer than `limit` events (none before the first:
            // the first batch never waits).
            var smallBefore = false
            var readLimit = limit
            while !closed.get() {
                do {
                    var events = try log.followingEvents(from: next, limit: readLimit, decompressor: decompressor)
                    readLimit = events.count >= readLimit ? backlogLimit : limit
                    guard var last = events.last else {
                        if idle == nil { idle = ContinuousClock.now }
                        _ = log.waitForSeq(next, blockingFor: .milliseconds(100))
                        continue
                    }
                    let now = ContinuousClock.now
                    let busy = idle.map { now - $0 < (linger ?? .zero) } ?? true
                    idle = nil
                    var waited = false
                    let small = events.count < limit
                    if let linger, small, smallBefore, busy {
                        waited = true
                        let deadline = now + linger
                        while events.count < limit && !closed.get() {
                            let left = deadline - ContinuousClock.now
                            guard left > .zero, log.waitForSeq(last.seq + 1, blockingFor: left) else { break }
                            events += try log.followingEvents(from: last.seq + 1, limit: limit - events.count, decompressor: decompressor)
                            last = events[events.count - 1]
                        }
                    }
                    smallBefore = small
                    for p in box.value { p.computeAhead(events) }
                    next = last.seq + 1
                    if !queue.put(.batch(events, waited: waited)) { return }
                } catch {
                    _ = queue.put(.failure(error))
                    return
                }
            }
        }
    }

    /// The next batch (and whether it waited for company), or none when none came within
    /// `waiting`.
    func next(waiting: Duration) throws -> (events: [Event], waited: Bool) {
        switch queue.take(waiting: waiting) {
        case .batch(let events, let waited): return (events, waited)
        case .failure(let error): throw error
        case nil: return ([], false)
        }
    }

    /// Stops the reader (it ends within one wait for a commit).
    func close() {
        closed.set(true)
        queue.close()
    }
}

/// A small blocking queue between a reader thread and the folding thread.
final class BlockingQueue<Item>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Item] = []
    private var closed = false
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// False when the queue was closed (the consumer gave up).
    func put(_ item: Item) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while items.count >= capacity && !closed { condition.wait() }
        if closed { return false }
        items.append(item)
        condition.broadcast()
        return true
    }

    func take() -> Item { take(until: nil)! }

    /// The next item, or nil when none came within `waiting`.
    func take(waiting: Duration) -> Item? {
        take(until: Date(timeIntervalSinceNow: Double(waiting.components.seconds) + Double(waiting.components.attoseconds) / 1e18))
    }

    /// (nil: no deadline. `Date.distantFuture` would trap converting to a `timespec`.)
    private func take(until deadline: Date?) -> Item? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty {
            guard let deadline else { condition.wait(); continue }
            if !condition.wait(until: deadline) && items.isEmpty { return nil }
        }
        let item = items.removeFirst()
        condition.broadcast()
        return item
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

/// Results of work run with `concurrentPerform`, one slot per iteration.
final class ParallelResults<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<T, Error>?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<T, Error>) { lock.withLock { slots[i] = r } }
    var values: [Result<T, Error>] { lock.withLock { slots.map { $0 ?? .failure(ViewsError("a projection did not fold")) } } }
}

/// Hands a value to `concurrentPerform` whose parts each thread uses alone.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

/// Another process moved a checkpoint while a pipelined catch-up had a batch in flight.
struct PipelineConflict: Error {}

/// Runs one job at a time on a background thread; `wait` returns its result.
final class Finisher: @unchecked Sendable {
    private let queue = DispatchQueue(label: "touchstone.views.finisher")
    private let thread: WorkerThread?
    /// Where a job folds its second projection while the first folds on `thread` (the live
    /// tail's, scheduled like it); without one, the projections fold on the dispatch pool.
    let helper: WorkerThread?
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<BatchReport?, Error> = .success(nil)

    /// On `thread` when given (the live tail's, at a raised priority), else on a queue of its own.
    init(thread: WorkerThread? = nil, helper: WorkerThread? = nil) {
        self.thread = thread
        self.helper = helper
    }

    func submit(_ job: @escaping () throws -> BatchReport?) {
        let box = UncheckedBox(job)
        let run: @Sendable () -> Void = {
            self.result = Result { try box.value() }
            self.done.signal()
        }
        if let thread { thread.run(run) } else { queue.async(execute: run) }
    }

    /// Waits for the submitted job (call once per `submit`).
    func wait() throws -> BatchReport? {
        done.wait()
        return try result.get()
    }
}

/// The process's resident memory.
enum ResidentMemory {
    /// Resident file-backed and shared pages, in bytes (`/proc/self/statm`'s third field); 0
    /// where unknown.
    static func fileBacked() -> Int {
        guard let text = readWholeFile("/proc/self/statm") else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 2, let pages = Int(fields[2]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
