import Foundation

/// What one commit did, for metrics.
public struct CommitReport: Sendable {
    public let appended: Int
    public let duplicates: Int
    public let deadLetters: Int
    public let callers: Int
    public let seconds: Double
}

/// The single writer. Concurrent callers `submit` their events; those arriving while a commit
/// is in flight share the next one (group commit), so one fsync acknowledges many requests.
/// Each caller gets its outcomes only after the transaction holding them is durable.
///
///     let ingestor = Ingestor(log: log)
///     let outcomes = try await ingestor.submit(prepared)   // durable here
///
/// The commits run on a dedicated thread (`log-writer`) that takes the next group as soon as
/// one is durable and resumes each caller from there. It never waits for an executor: when it
/// was an actor hopping to a dispatch queue and back, the hop back waited behind the request
/// handlers on the event loops — 12 ms of a 35 ms commit cycle under the batch load.
public final class Ingestor: Sendable {
    public let log: EventLog
    /// Most events one transaction takes; more wait for the next commit.
    public let maxBatch: Int
    let core: Core

    public init(log: EventLog, maxBatch: Int = 8192, onCommit: (@Sendable (CommitReport) -> Void)? = nil) {
        self.log = log
        self.maxBatch = maxBatch
        core = Core(log: log, maxBatch: maxBatch, onCommit: onCommit)
        let core = self.core
        let thread = Thread {
            #if os(Linux)
            // Named for `top -H`, perf and the bench's CPU split (Foundation's `Thread.name` does not reach the kernel here).
            try? Data("log-writer".utf8).write(to: URL(fileURLWithPath: "/proc/thread-self/comm"))
            #endif
            core.run()
        }
        thread.start()
    }

    deinit { core.stop() }

    /// Appends `items` and keeps `deadLetters`; returns the outcomes (in `items` order) once
    /// durable. - Throws: the commit's error; then nothing of this call was written.
    public func submit(_ items: [PreparedEvent], deadLetters: [DeadLetter] = []) async throws -> [AppendOutcome] {
        if items.isEmpty && deadLetters.isEmpty { return [] }
        var sealed = items
        try log.seal(&sealed)  // compress on the caller's thread; the writer only writes
        return try await withCheckedThrowingContinuation { c in
            core.enqueue(Pending(items: sealed, deadLetters: deadLetters, continuation: c))
        }
    }

    struct Pending {
        let items: [PreparedEvent]
        let deadLetters: [DeadLetter]
        let continuation: CheckedContinuation<[AppendOutcome], Error>
    }

    /// The queue of callers and the writer thread's loop; the thread holds this, not the
    /// `Ingestor`, so that dropping the ingestor stops the thread.
    final class Core: @unchecked Sendable {
        let log: EventLog
        let maxBatch: Int
        let onCommit: (@Sendable (CommitReport) -> Void)?
        private let condition = NSCondition()
        private var pending: [Pending] = []  // under `condition`
        private var stopping = false          // under `condition`

        init(log: EventLog, maxBatch: Int, onCommit: (@Sendable (CommitReport) -> Void)?) {
            self.log = log
            self.maxBatch = maxBatch
            self.onCommit = onCommit
        }

        func enqueue(_ p: Pending) {
            condition.lock()
            pending.append(p)
            condition.signal()
            condition.unlock()
        }

        /// Callers waiting for a commit that has not started.
        var waiting: Int { condition.withLock { pending.count } }

        func stop() {
            condition.lock()
            stopping = true
            condition.signal()
            condition.unlock()
        }

        /// Takes everything waiting (up to `maxBatch` events, at least one caller) as one
        /// commit; nil once stopped with nothing left.
        private func next() -> [Pending]? {
            condition.lock()
            defer { condition.unlock() }
            while pending.isEmpty {
                if stopping { return nil }
                condition.wait()
            }
            var count = 0, taken = 0
            while taken < pending.count, taken == 0 || count + pending[taken].items.count <= maxBatch {
                count += pending[taken].items.count
                taken += 1
            }
            let group = Array(pending[..<taken])
            pending.removeFirst(taken)
            return group
        }

        func run() {
            while let group = next() {
                let items = group.count == 1 ? group[0].items : group.flatMap(\.items)
                let dead = group.flatMap(\.deadLetters)
                let started = ContinuousClock.now
                switch Result(catching: { try log.append(items, deadLetters: dead) }) {
                case .success(let outcomes):
                    // Reported before any caller is answered: whoever saw the answer sees the commit's metrics.
                    if let onCommit {
                        let elapsed = ContinuousClock.now - started
                        let dups = outcomes.reduce(0) { if case .duplicate = $1 { return $0 + 1 }; return $0 }
                        onCommit(CommitReport(appended: outcomes.count - dups, duplicates: dups, deadLetters: dead.count,
                                              callers: group.count,
                                              seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
                    }
                    var offset = 0
                    for p in group {
                        p.continuation.resume(returning: Array(outcomes[offset..<offset + p.items.count]))
                        offset += p.items.count
                    }
                case .failure(let error):
                    for p in group { p.continuation.resume(throwing: error) }
                }
            }
        }
    }
}
