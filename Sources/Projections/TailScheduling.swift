import Foundation
#if canImport(Glibc)
import Glibc
/// glibc's `gettid` (2.30+; not in the Glibc module).
@_silgen_name("gettid") private func glibcGettid() -> Int32
#endif

/// How the views' tail threads are scheduled (`views.tailScheduling`), and how one thread is.
///
/// Under full ingest load the tail competes with the HTTP event loops for the cores. A commit
/// group of a thousand events lands at once and the tail folds it in batches; every moment a
/// batch waits for a core is added to the commit-to-visible lag of all its events. Measured
/// under the HTTP batch benchmark (2 cores, 32 connections): with the tail threads at nice −10
/// they still waited in the run queue ≈ 0.6 ms for every 1 ms they ran, and 31–53 % of events
/// were visible within 20 ms; as real-time threads ranked by stage, 76–94 % (README).
public enum TailScheduling: String, Sendable, CaseIterable {
    /// Real-time (`SCHED_FIFO`, priority 1–3 by pipeline stage) while the tail keeps up; where
    /// the process may not (no root, `CAP_SYS_NICE` or `RLIMIT_RTPRIO`), as `raised`. When the
    /// tail falls behind (a backlog after a restart, or a load it cannot follow) it drops to
    /// `raised` until it has caught up, so a long fold never takes the cores from the HTTP
    /// handlers.
    case realtime
    /// nice −10 where the process may (`RLIMIT_NICE`), else the default.
    case raised
    /// The default scheduling, like every other thread.
    case normal
}

/// Scheduling of one thread, as a `TailScheduling` level.
enum ThreadPriority {
    /// Applies to thread `tid` (a thread of this process); returns what took effect.
    /// `rank` is the real-time priority (1 and up): a pipeline's later stages rank higher, so
    /// the batch nearest to being visible runs first (`SCHED_FIFO` does not share a core
    /// between threads of one priority). Where the limit allows less, priority 1.
    @discardableResult
    static func apply(_ wanted: TailScheduling, tid: Int32, rank: Int32 = 1) -> TailScheduling {
        #if os(Linux)
        if wanted == .realtime {
            var param = sched_param(sched_priority: rank)
            if sched_setscheduler(tid, SCHED_FIFO, &param) == 0 { return .realtime }
            param.sched_priority = 1
            if rank > 1 && sched_setscheduler(tid, SCHED_FIFO, &param) == 0 { return .realtime }
        } else {
            var param = sched_param(sched_priority: 0)
            _ = sched_setscheduler(tid, SCHED_OTHER, &param)
        }
        let nice: Int32 = wanted == .normal ? 0 : -10
        if setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid), nice) == 0 { return wanted == .normal ? .normal : .raised }
        return .normal
        #else
        return .normal
        #endif
    }

    /// The calling thread's id.
    static var currentThreadID: Int32 {
        #if os(Linux)
        glibcGettid()
        #else
        0
        #endif
    }

    /// Thread `tid`'s real-time priority (0 when it is not real-time).
    static func realtimeRank(tid: Int32) -> Int32 {
        #if os(Linux)
        var param = sched_param()
        return sched_getparam(tid, &param) == 0 ? param.sched_priority : 0
        #else
        return 0
        #endif
    }

    /// The scheduling thread `tid` runs under now (for tests and the log).
    static func current(tid: Int32) -> TailScheduling {
        #if os(Linux)
        let policy = sched_getscheduler(tid)
        if policy == SCHED_FIFO || policy == SCHED_RR { return .realtime }
        errno = 0
        let nice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid))
        return nice < 0 ? .raised : .normal
        #else
        return .normal
        #endif
    }
}

/// The tail's threads (reader, fold, committer and its helper) and the scheduling they run
/// under: `realtime` while the tail keeps up, `raised` once it has folded
/// `behindBatches` full batches in a row (it is behind), `realtime` again at the first batch
/// that is not full (it has caught up). Only the tail thread calls `paced` and `demote`.
final class TailPriority: @unchecked Sendable {
    let scheduling: TailScheduling
    /// Full batches in a row after which the tail counts as behind (a batch read from a
    /// backlog counts as several): 32 × 256 events is about a tenth of a second of folding,
    /// more than a group commit holds (2,048 events by default, `ingest.maxCommitEvents`;
    /// 8,192 would still fit).
    static let behindBatches = 32
    private let lock = NSLock()
    private var threads: [(tid: Int32, rank: Int32)] = []
    private var level: TailScheduling?
    /// Real time was refused (no privilege): the threads stay raised rather than ask again.
    private var realtimeRefused = false
    private var fullInARow = 0

    init(_ scheduling: TailScheduling) { self.scheduling = scheduling }

    /// What the threads run under now (nil before the first `register`).
    var current: TailScheduling? { lock.withLock { level } }

    /// The registered threads.
    var threadIDs: [Int32] { lock.withLock { threads.map(\.tid) } }

    /// Adds the calling thread, named `name` (as `top -H` and `perf` show it), at real-time
    /// priority `rank`, and gives it the tail's current scheduling.
    func register(_ name: String, rank: Int32) {
        let tid = ThreadPriority.currentThreadID
        #if os(Linux)
        // (Foundation's `Thread.name` does not reach the kernel's name here.)
        try? Data(name.prefix(15).utf8).write(to: URL(fileURLWithPath: "/proc/self/task/\(tid)/comm"))
        #endif
        lock.withLock {
            threads.append((tid, rank))
            let wanted = level ?? scheduling
            let got = ThreadPriority.apply(wanted, tid: tid, rank: rank)
            if wanted == .realtime && got != .realtime { realtimeRefused = true }
            if level == nil { level = got }
        }
    }

    /// After each fetch of the tail: `fetched` events of at most `limit`.
    func paced(fetched: Int, limit: Int) {
        guard scheduling == .realtime else { return }
        // A batch of several times `limit` (read from a backlog) counts as that many.
        fullInARow = fetched >= limit ? fullInARow + fetched / limit : 0
        if fullInARow >= Self.behindBatches { set(.raised) } else if fullInARow == 0 { set(.realtime) }
    }

    /// Before work that may be long (adopting a generation: its catch-up): off real time.
    func demote() {
        guard scheduling == .realtime else { return }
        fullInARow = Self.behindBatches
        set(.raised)
    }

    private func set(_ wanted: TailScheduling) {
        lock.withLock {
            guard level != nil, level != wanted else { return }
            if wanted == .realtime && realtimeRefused { return }
            var got = wanted
            for t in threads { got = ThreadPriority.apply(wanted, tid: t.tid, rank: t.rank) }
            if wanted == .realtime && got != .realtime { realtimeRefused = true }
            level = got
        }
    }
}

/// A thread running jobs one at a time, in order, until its owner goes away.
final class WorkerThread: @unchecked Sendable {
    private let jobs = BlockingQueue<(@Sendable () -> Void)?>(capacity: 64)

    init(name: String, setup: @escaping @Sendable () -> Void) {
        let jobs = self.jobs
        let thread = Thread {
            setup()
            while let job = jobs.take() { job() }
        }
        thread.name = name
        thread.start()
    }

    func run(_ job: @escaping @Sendable () -> Void) { _ = jobs.put(job) }

    deinit { _ = jobs.put(nil) }
}
