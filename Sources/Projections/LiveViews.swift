import EventLog
import Foundation
import JSONCore
import LMDB

/// The views a running server (or a CLI command) reads: the live generation named by
/// `<data>/views/CURRENT`, kept current with the log.
///
/// - At open, a missing generation is created. When a projection's version or configuration
///   (identity rules) changed, the old generation keeps serving while a new one is built from
///   the log in the background; then the pointer switches.
/// - `run` tails the log into the live generation. When another process (the replay tool)
///   switches `CURRENT`, the next poll adopts the new generation: it is caught up with every
///   event that arrived meanwhile before queries move to it, so nothing is lost.
public final class LiveViews: @unchecked Sendable {
    public let store: ViewStore
    public let log: EventLog
    public let set: ProjectionSet
    private let lock = NSLock()
    /// Where the tail folds: a thread of its own (not the concurrency pool, not a pooled GCD
    /// thread that would keep the raised priority for other work), started on first use.
    private lazy var tailThread = WorkerThread(name: "touchstone.views.tail") { [priority] in priority.register("views-tail", rank: 2) }
    /// Where the tail's batches fold their other projections and commit, while the tail thread
    /// folds the next batch's profiles; the helper folds the second of those projections.
    private lazy var finisher = Finisher(thread: WorkerThread(name: "touchstone.views.commit") { [priority] in priority.register("views-commit", rank: 3) },
                                         helper: WorkerThread(name: "touchstone.views.helper") { [priority] in priority.register("views-helper", rank: 3) })
    /// Where the tail's next batches are read and their stateless part computed, while the tail
    /// thread folds.
    private lazy var reader = WorkerThread(name: "touchstone.views.reader") { [priority] in priority.register("views-reader", rank: 1) }
    /// How these four are scheduled (see `TailScheduling`): real-time priority by stage, the
    /// committing stage first.
    let priority: TailPriority
    /// How long a small batch of the tail may wait for company (see `init`).
    let tailLinger: Duration?
    private var live: (generation: ViewGeneration, runner: ProjectionRunner, profiles: ProfileReader)
    private var rebuilding: String?
    /// The replay job started through the API (`POST /v1/admin/replay`): a rebuild on its own
    /// thread whose result this process adopts when it is done.
    public let replay = ReplayJob()

    /// Opens the live generation (creating `g000001` when there is none). With `set` nil,
    /// the projections are configured as the live generation was built (its identity rules),
    /// so a CLI query never triggers a rebuild with other rules than the server's.
    ///
    /// `tailScheduling` is how `run`'s threads are scheduled; `tailLinger` how long a small
    /// batch of the tail may wait for more commits to join it while commits come in quick
    /// succession (nil: never; see `TailReader`).
    public init(dataDirectory: String, log: EventLog, set: ProjectionSet? = nil, tailScheduling: TailScheduling = .raised,
                tailLinger: Duration? = nil) throws {
        priority = TailPriority(tailScheduling)
        self.tailLinger = tailLinger
        EnvironmentCache.shared.useWriteMap()
        store = ViewStore(dataDirectory: dataDirectory)
        self.log = log
        let name: String
        var chosen = set ?? ProjectionSet()
        if let current = store.current(), store.exists(current) {
            name = current
            if set == nil, let stored = try Self.storedRules(store, current) { chosen.rules = stored }
        } else {
            name = store.nextName()
            _ = try store.open(name, set: chosen)
            try store.setCurrent(name)
        }
        self.set = chosen
        live = try Self.load(store, name, chosen, log)
    }

    /// The identity rules generation `name` was built with, if it recorded them.
    public static func storedRules(_ store: ViewStore, _ name: String) throws -> IdentityRules? {
        let g = try store.open(name, set: ProjectionSet())
        guard let text = try g.metaValue("config/identity"), let json = try? JSON.parse(Array(text.utf8)) else { return nil }
        return try IdentityRules(json: json)
    }

    static func load(_ store: ViewStore, _ name: String, _ set: ProjectionSet, _ log: EventLog)
        throws -> (generation: ViewGeneration, runner: ProjectionRunner, profiles: ProfileReader) {
        let g = try store.open(name, set: set)
        if try g.metaValue("config/identity") == nil {
            try g.setMetaValue("config/identity", String(decoding: set.rules.json.jsonBytes(), as: UTF8.self))
        }
        return (g, try ProjectionRunner(log: log, generation: g), try ProfileReader(g))
    }

    /// How the tail's threads are scheduled now (nil before `run` starts them): `realtime`
    /// while it keeps up, `raised` while it is behind or where real time is not permitted.
    public var tailSchedulingNow: TailScheduling? { priority.current }

    public var generation: ViewGeneration { lock.withLock { live.generation } }
    public var runner: ProjectionRunner { lock.withLock { live.runner } }
    public var profiles: ProfileReader { lock.withLock { live.profiles } }

    /// Whether every projection of the live generation was built by this code and configuration.
    public func isStale() throws -> Bool {
        let g = generation
        if try g.projections.contains(where: { try !g.isCurrent($0) }) { return true }
        // A projection added since the generation was built starts at seq 0 while the others
        // are ahead: those that fold after another (segments after profiles) need it to fold
        // the same events, so the whole generation is rebuilt.
        let checkpoints = try g.projections.map { try g.checkpoint($0.name) }
        return checkpoints.contains(0) && checkpoints.contains { $0 > 0 }
    }

    /// Waits (bounded) until the live views have applied `seq`.
    public func waitForApplied(_ seq: UInt64, timeout: Duration) async -> Bool {
        await runner.waitForApplied(seq, timeout: timeout)
    }

    /// Folds everything the log holds now into the live generation (CLI use).
    @discardableResult
    public func catchUp(progress: ((BatchReport) -> Void)? = nil) throws -> Int {
        if let stale = try rebuildIfStale(progress: progress) { return stale }
        return try runner.catchUp(progress: progress)
    }

    /// When the live views are stale, rebuilds them into a new generation and switches.
    private func rebuildIfStale(progress: ((BatchReport) -> Void)?) throws -> Int? {
        guard try isStale() else { return nil }
        let name = store.nextName()
        let g = try store.open(name, set: set)
        let runner = try ProjectionRunner(log: log, generation: g)
        let n = try runner.catchUp(progress: progress)
        try adopt(name)
        return n
    }

    /// Switches the live generation to `name` (catching it up first) and points `CURRENT` at it.
    public func adopt(_ name: String) throws {
        let next = try Self.load(store, name, set, log)
        try next.runner.catchUp()
        lock.withLock { live = next }
        if store.current() != name { try store.setCurrent(name) }
    }

    /// Tails the log into the live views until the task is cancelled. Each batch's report
    /// goes to `report`; `CURRENT` is polled so a switch made by another process is adopted.
    ///
    /// The whole loop — reading the next events, folding, committing, waiting for the next
    /// commit — runs on the tail thread. It used to read and wait on the concurrency pool,
    /// which in the server runs on the HTTP event loops: under full ingest load every batch
    /// then waited twice behind request handling, a fixed cost per batch that kept the views
    /// tens of milliseconds behind and made smaller batches fall seconds behind.
    public func run(report: @escaping @Sendable (BatchReport) -> Void = { _ in }) async throws {
        // The tail takes what this process appends from memory while it keeps up.
        log.keepRecentEvents(capacity: Self.recentEvents)
        let stop = Locked(false)
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
                tailThread.run { c.resume(with: Result { try self.tail(report, stop: { stop.get() }) }) }
            }
        } onCancel: {
            stop.set(true)
        }
    }

    /// The tail's loop, on the tail thread, until `stop` says so. A switch of `CURRENT` by
    /// another process is adopted between batches.
    private func tail(_ report: @Sendable (BatchReport) -> Void, stop: () -> Bool) throws {
        // Stale views: serve them while the new generation is built beside, then switch.
        var rebuild: (name: String, done: Locked<Result<Void, Error>?>)?
        if try isStale() {
            let name = store.nextName()
            lock.withLock { rebuilding = name }
            let done = Locked<Result<Void, Error>?>(nil)
            Thread.detachNewThread { [self] in
                do {
                    let g = try store.open(name, set: set)
                    try ProjectionRunner(log: log, generation: g).catchUp()
                    done.set(.success(()))
                } catch {
                    done.set(.failure(error))
                }
            }
            rebuild = (name, done)
        }
        let pointer = ViewStore.Watch(store)
        while !stop() {
            if let r = rebuild, let result = r.done.get() {
                try result.get()
                priority.demote()  // the adoption's catch-up can be long
                try adopt(r.name)
                lock.withLock { rebuilding = nil }
                rebuild = nil
            }
            if let pointed = store.current(), pointed != generation.name, store.exists(pointed) {
                priority.demote()
                try adopt(pointed)
            }
            let name = generation.name
            // Until stopped, the rebuild is done, or another generation is made live (read between batches).
            try runner.follow(limit: Self.tailBatch, backlogLimit: Self.tailBacklogBatch, finisher: finisher, reader: reader, linger: tailLinger, stop: {
                stop() || rebuild?.done.get() != nil || pointer.current().map { $0 != name && store.exists($0) } == true
            }, paced: { [priority] in priority.paced(fetched: $0, limit: Self.tailBatch) }, report: report)
        }
    }

    /// The most events the tail folds in one batch.
    /// Measured under the HTTP batch benchmark (≈ 55k events/s): 256 kept 80–83 % of events
    /// visible within 20 ms; 128 and 512 ≈ 81 % and 76 %, 1,024 73 %, 64 63 % (more commits).
    static let tailBatch = 256
    /// The most after a batch that was full (a backlog: the rest of a group commit).
    /// Measured under the HTTP batch benchmark (≈ 90k events/s, three interleaved runs each):
    /// 512 folded with 8.0–8.3 µs of views CPU an event against 8.2–9.1 with 256, at
    /// 90–91k events/s against 84–91k, with the lag as before (p99 ≤ 10 ms, 86–89 % within
    /// 5 ms). 1,024 let the lag's p99 reach 25 ms; 512 or 768 for every batch, not only
    /// after a full one, left 30–66 % within 5 ms and were no faster.
    static let tailBacklogBatch = 512
    /// How many of the newest appended events the log keeps for the tail
    /// (`EventLog.keepRecentEvents`): at 100k events/s, the last 0.16 s (about 10 MiB).
    static let recentEvents = 16_384
}

/// A value behind a lock.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func get() -> T { lock.withLock { value } }
    func set(_ v: T) { lock.withLock { value = v } }
    /// Sets `v` and returns the value it replaced.
    func swap(_ v: T) -> T { lock.withLock { let old = value; value = v; return old } }
}

