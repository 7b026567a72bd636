// Projections folds the event log into views: named LMDB databases in a views environment
// (`<data>/views/<generation>`), each owned by one projection. A projection is a pure fold:
// the runner hands it events in log order; it reads the views as of the last commit, keeps
// its changes in memory, and writes them together with its checkpoint in one transaction,
// so a crash never applies an event twice or skips one. No wall clock, no randomness, no
// hash order: the same log gives the same bytes.

import EventLog
import LMDB

/// A fold of the log into views.
///
/// The runner calls, per batch: `fold` (events after the projection's checkpoint, in order,
/// with a read transaction on the views as last committed), `seal`, then `write` inside the
/// batch's write transaction (which may run more than once if the map grows — it must only
/// write what `fold` computed), then `didCommit` (or `reset` when the commit failed).
/// Catching up, the runner folds the first projection's next batch while the others fold
/// and commit the sealed one.
public protocol Projection: AnyObject {
    /// A stable name: the key of its checkpoint and failures.
    var name: String { get }
    /// Bumping the version rebuilds the projection's views from the log.
    var version: Int { get }
    /// What else the views depend on (e.g. identity rules): a change rebuilds them too.
    var configurationDigest: String { get }
    /// The named databases it owns (for digests, verification and pruning).
    var databaseNames: [String] { get }
    /// Opens (creating) its databases.
    func open(_ environment: Environment) throws
    /// Folds `events` (seq order) into pending changes; returns the events it could not apply.
    func fold(_ events: ArraySlice<Event>, _ tx: borrowing ReadTransaction) throws -> [ProjectionFailure]
    /// Writes the pending changes.
    func write(_ tx: borrowing WriteTransaction) throws
    /// Drops every pending change (when a commit failed or conflicted).
    func reset()
    /// Marks the end of folding a batch: its changes are what `write` writes and what the
    /// projections after this one read. A projection whose next batch may fold while this
    /// one commits keeps them apart from the next batch's. Default: nothing.
    func seal()
    /// The batch's write committed: drop what `write` wrote. Default: `reset()`.
    func didCommit()
    /// Does ahead of `write`, on another thread, what `write` would do without the
    /// transaction (encoding the sealed changes), while the commit waits for other folds.
    /// Thread-safe against a fold of the next batch. Default: nothing.
    func prepareWrite()
    /// Called on the runner's reader thread with the next batch while the previous one folds:
    /// a projection may do the batch's stateless work here (thread-safe, touching no fold
    /// state) and pick it up in `fold`. Optional.
    func computeAhead(_ events: [Event])
    /// Gives the projection the log it folds, for work that needs more than the batch (e.g.
    /// segments re-reading history for a new definition). Called by the runner before folding.
    func attach(log: EventLog)
}

extension Projection {
    public func computeAhead(_ events: [Event]) {}
    public func attach(log: EventLog) {}
    public func seal() {}
    public func didCommit() { reset() }
    public func prepareWrite() {}
}

/// An event a projection could not apply: recorded, counted, skipped.
public struct ProjectionFailure: Sendable, Equatable {
    public var projection: String
    public var seq: UInt64
    public var error: String

    public init(projection: String, seq: UInt64, error: String) {
        self.projection = projection
        self.seq = seq
        self.error = error
    }
}

/// The projections Touchstone runs, made fresh for one generation.
public struct ProjectionSet: Sendable {
    public var rules: IdentityRules
    /// How many committed profile states the profile projection keeps decoded between
    /// batches (`ProfileProjection.defaultCachedStates`; 0: none), and four times as many
    /// identifiers' profiles. Changes speed, never views.
    public var cachedProfileStates: Int
    /// How many committed activity records the KPI projection keeps decoded between batches
    /// (`KPIProjection.defaultCachedActivities`; 0: none). Changes speed, never views.
    public var cachedKPIActivities: Int

    public init(rules: IdentityRules = .default, cachedProfileStates: Int = ProfileProjection.defaultCachedStates,
                cachedKPIActivities: Int = KPIProjection.defaultCachedActivities) {
        self.rules = rules
        self.cachedProfileStates = cachedProfileStates
        self.cachedKPIActivities = cachedKPIActivities
    }

    /// Every projection's name, in fold order.
    public static let names = [ProfileProjection.projectionName, SegmentProjection.projectionName, KPIProjection.projectionName]

    /// New instances of the named projections (all when `names` is nil).
    /// Segments and KPIs read the profile projection's pending results, so asking for either
    /// includes profiles (folded first).
    public func make(_ names: [String]? = nil) -> [any Projection] {
        var out: [any Projection] = []
        let wants = { (n: String) in names == nil || names!.contains(n) }
        let dependents = wants(SegmentProjection.projectionName) || wants(KPIProjection.projectionName)
        guard wants(ProfileProjection.projectionName) || dependents else { return out }
        let profiles = ProfileProjection(rules: rules, cachedStates: cachedProfileStates)
        out.append(profiles)
        if wants(SegmentProjection.projectionName) { out.append(SegmentProjection(profiles: profiles)) }
        if wants(KPIProjection.projectionName) { out.append(KPIProjection(profiles: profiles, cachedActivities: cachedKPIActivities)) }
        return out
    }
}
