import Foundation

/// Profile states as last committed, kept decoded between batches.
///
/// The live tail folds small batches (≤ 256 events): a customer active now is touched in batch
/// after batch, and each time their state was decoded from the views, then encoded again.
/// This keeps the states a commit wrote, so the next batch that touches the profile takes the
/// object itself: no decode, no copy, no deallocation of the old one.
///
/// - Ownership: `take` removes the state; the fold mutates it in its batch's layer, and the
///   commit puts the new state back (`insert`). A state is never in the cache and in a
///   layer being folded at once.
/// - Validity: only the projection's own commits fill it, so it holds exactly what the views
///   hold for those profiles. Whatever else could change the views (another process folding
///   into the same generation) is detected as a conflict, and the projection's `reset`
///   empties the cache.
/// - Bounded: beyond `capacity` states, the ones committed longest ago leave first.
///
/// The KPI projection keeps its customers' `Activity` records the same way.
typealias StateCache = CommittedCache<ProfileState>

/// Objects as a projection's own commits last wrote them, by profile id (see `StateCache`).
final class CommittedCache<Value: AnyObject> {
    let capacity: Int
    private var entries: [UInt64: Entry] = [:]
    /// Profiles in the order they were inserted, from `head` on; a pair whose stamp no longer
    /// matches its entry is stale (the state was taken, or inserted again since).
    private var order: [(pid: UInt64, stamp: UInt64)] = []
    private var head = 0
    private var stamp: UInt64 = 0

    private struct Entry {
        var state: Value
        var stamp: UInt64
    }

    init(capacity: Int) { self.capacity = max(0, capacity) }

    var count: Int { entries.count }

    /// Removes and returns the committed state of `pid`, if cached.
    func take(_ pid: UInt64) -> Value? {
        entries.removeValue(forKey: pid)?.state
    }

    /// The committed state of `pid`, if cached, left in place: read it, never mutate it.
    func peek(_ pid: UInt64) -> Value? { entries[pid]?.state }

    /// Keeps `state` as `pid`'s committed state (the caller no longer mutates it).
    func insert(_ pid: UInt64, _ state: Value) {
        guard capacity > 0 else { return }
        stamp += 1
        entries[pid] = Entry(state: state, stamp: stamp)
        order.append((pid, stamp))
        while entries.count > capacity, head < order.count {
            let (p, s) = order[head]
            head += 1
            if entries[p]?.stamp == s { entries[p] = nil }
        }
        // Stale pairs pile up while profiles are taken and put back: drop them now and then.
        if order.count - head > 2 * capacity + 1024 {
            order = entries.map { ($0.key, $0.value.stamp) }.sorted { $0.1 < $1.1 }
            head = 0
        } else if head > 4096 && 2 * head > order.count {
            order.removeFirst(head)
            head = 0
        }
    }

    func remove(_ pid: UInt64) { entries[pid] = nil }

    func removeAll() {
        entries.removeAll()
        order.removeAll()
        head = 0
    }
}

/// Which views snapshots a projection's caches match: those of its own commits. It notes the
/// last write transaction `write` ran in and the last one whose batch `didCommit` saw; a fold
/// whose snapshot is neither reads views someone else wrote (another process folding into the
/// same generation), and what the projection kept from its own commits may not match them.
/// Thread-safe: the commit thread writes, the folding thread asks.
final class OwnCommits: @unchecked Sendable {
    private let lock = NSLock()
    private var committed: Int?, written: Int?

    /// `write` ran in transaction `txn`.
    func wrote(_ txn: Int) { lock.withLock { written = txn } }

    /// The batch written last committed.
    func didCommit() { lock.withLock { committed = written } }

    /// After a reset: no snapshot is known to be ours.
    func forget() { lock.withLock { committed = nil; written = nil } }

    /// Whether a fold reading `snapshot` (its transaction id) reads only this projection's own commits.
    func isOwn(snapshot: Int) -> Bool { lock.withLock { snapshot == committed || snapshot == written } }
}
