import Foundation

/// The newest events this process appended, as it appended them: for a reader that follows
/// the log closely (the live views' tail), which then takes them from here instead of
/// reading their records, decompressing and decoding them again — the same `Event`s, byte
/// for byte (a record stores the payload as it is, and type and times beside it).
///
/// Only a run of consecutive seqs starting at the one asked for is served, so events another
/// process appended in between (a gap here) are never skipped: the reader reads those from
/// the log. Bounded: the oldest leave first.
final class RecentEvents: @unchecked Sendable {
    let capacity: Int
    private let lock = NSLock()
    private var events: [Event] = []
    /// Where the oldest kept event is in `events` (those before it are dropped, compacted now and then).
    private var head = 0

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// After a commit: its appended events, in seq order (made in place, not copied).
    func append<S: Sequence<Event>>(_ new: S) {
        lock.withLock {
            events.append(contentsOf: new)
            let excess = events.count - head - capacity
            if excess > 0 { head += excess }
            if head >= capacity { events.removeFirst(head); head = 0 }
        }
    }

    /// Up to `limit` events with seqs `from`, `from` + 1, … as kept; empty when `from` is not.
    func take(from: UInt64, limit: Int) -> [Event] {
        lock.withLock {
            // Binary search for `from` among the kept seqs (increasing).
            var lo = head, hi = events.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if events[mid].seq < from { lo = mid + 1 } else { hi = mid }
            }
            guard lo < events.count, events[lo].seq == from else { return [] }
            var end = lo + 1
            while end < events.count, end - lo < limit, events[end].seq == events[end - 1].seq + 1 { end += 1 }
            return Array(events[lo..<end])
        }
    }

    var count: Int { lock.withLock { events.count - head } }
}
