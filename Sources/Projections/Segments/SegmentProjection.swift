import EventLog
import Foundation
import JSONCore
import LMDB

/// Segment membership, maintained incrementally. Folds after `ProfileProjection` in the same
/// batch and reads what it did (`assignments`, `merges`, pending profile states).
///
/// Databases:
/// - `seg_defs`: key → definition (binary JSON: key, name, rule, builtin, seq, defined_at, version)
/// - `seg_members`: key NUL pid BE → the logical time the profile entered
/// - `seg_profiles`: pid BE → the profile's segments (sorted keys), its next due time and the
///   order figures the global built-ins rank by
/// - `seg_counters`: key NUL condition BE16 NUL pid BE → events counted for one event condition
///   of one segment and profile (all-time or in-range count; timestamps still inside a `within` window)
/// - `seg_schedule`: due BE (biased) ‖ pid BE → when the profile must be re-evaluated without a
///   new event (someone leaves "last 30 days", enters "none in 90 days")
/// - `seg_changes`: key NUL id BE → enter/exit (pid, enter, logical time). Ids grow: the batch's
///   last seq << 24 | a counter.
/// - `seg_events`: seq BE → pid BE of each track event folded: with the log (which holds the
///   bodies), what backfills the counters of a new or changed definition. Keys only grow, so
///   every batch appends at the end of the tree.
/// - `seg_meta`: `clock` (max event time folded), `tick` (last daily tick), `size/<key>`, `updated/<key>`
///
/// Time is event time: the logical clock is the max timestamp folded so far (system events
/// excluded). Evaluation happens at the end of each batch for every profile the batch touched,
/// every profile whose due time passed, and (on a definition event) every profile. Final
/// memberships are a function of the log; the change feed records transitions as observed
/// at batch ends.
public final class SegmentProjection: Projection, @unchecked Sendable {
    public static let projectionName = "segments"
    public var name: String { Self.projectionName }
    public let version = 2
    public var configurationDigest: String { "builtins-1" }
    public let databaseNames = ["seg_defs", "seg_members", "seg_profiles", "seg_counters", "seg_schedule", "seg_changes", "seg_events", "seg_meta"]

    let profiles: ProfileProjection
    var defsDB: Database!
    var membersDB: Database!
    var profilesDB: Database!
    var countersDB: Database!
    var scheduleDB: Database!
    var changesDB: Database!
    var eventsDB: Database!
    var metaDB: Database!

    /// The log folded (attached by the runner): backfills read event bodies from it.
    private var log: EventLog?

    init(profiles: ProfileProjection) { self.profiles = profiles }

    public func attach(log: EventLog) { self.log = log }

    public func open(_ environment: Environment) throws {
        defsDB = try environment.openDatabase("seg_defs")
        membersDB = try environment.openDatabase("seg_members")
        profilesDB = try environment.openDatabase("seg_profiles")
        countersDB = try environment.openDatabase("seg_counters")
        scheduleDB = try environment.openDatabase("seg_schedule")
        changesDB = try environment.openDatabase("seg_changes")
        eventsDB = try environment.openDatabase("seg_events")
        metaDB = try environment.openDatabase("seg_meta")
    }

    // MARK: Pending changes

    struct CounterKey: Hashable { var key: String; var index: Int; var pid: UInt64 }
    struct Counter: Equatable { var total: Int64 = 0; var times: [Micros] = [] }
    struct ProfileRecord: Equatable {
        var segments: [String] = []   // sorted
        var due: Micros = .max
        var orders: Int64 = 0
        var revenue: Int64 = 0
        var lastOrderAt: Micros = .min
    }

    private var defs: [String: SegmentDefinition] = [:]
    private var order: [String] = []
    /// `defs` in `order` (what `evaluate` walks for every profile, without a lookup by key).
    private var ordered: [SegmentDefinition] = []
    private var eventIndex: [String: [(String, EventCondition)]] = [:]
    private var clock: Micros = .min
    private var tick: Int64 = .min
    private var counter: UInt64 = 0

    private var newDefs: [String: SegmentDefinition] = [:]
    private var redefined: Set<String> = []
    private var counters: [CounterKey: Counter?] = [:]
    private var dirty: Set<CounterKey> = []
    private var records: [UInt64: ProfileRecord?] = [:]
    private var members: [[UInt8]: Micros?] = [:]
    private var scheduleAdds: [UInt64: Micros] = [:]
    private var scheduleDeletes: [(Micros, UInt64)] = []
    private var changes: [([UInt8], [UInt8])] = []
    /// (profile, event) of the batch's track events.
    /// The batch's track events: (profile, seq, index in the batch).
    private var eventAdds: [(pid: UInt64, seq: UInt64, index: Int)] = []
    private var sizeDelta: [String: Int64] = [:]
    private var updated: [String: Micros] = [:]
    private var metaDirty = false
    private var lastSeq: UInt64 = 0

    public func reset() {
        defs = [:]; order = []; ordered = []; eventIndex = [:]
        newDefs = [:]; redefined = []
        counters.removeAll(keepingCapacity: true)
        dirty.removeAll(keepingCapacity: true)
        records.removeAll(keepingCapacity: true)
        members.removeAll(keepingCapacity: true)
        scheduleAdds.removeAll(keepingCapacity: true)
        scheduleDeletes.removeAll(keepingCapacity: true)
        changes.removeAll(keepingCapacity: true)
        eventAdds.removeAll(keepingCapacity: true)
        sizeDelta = [:]; updated = [:]
        metaDirty = false
        counter = 0
    }

    // MARK: Folding

    public func fold(_ events: ArraySlice<Event>, _ tx: borrowing ReadTransaction) throws -> [ProjectionFailure] {
        var failures: [ProjectionFailure] = []
        try loadDefinitions(tx)
        clock = try metaInt(tx, "clock") ?? .min
        tick = try metaInt(tx, "tick") ?? .min
        lastSeq = events.last?.seq ?? 0
        let startClock = clock

        var touched: Set<UInt64> = []
        let assignments = profiles.assignments
        var ai = assignments.startIndex
        // The fields the profile projection read (when it folded exactly these events).
        let pre = profiles.fields(of: events)
        // By index, reading an event's scalars in place: binding each event to a local copies
        // it, a reference count on a body the other folds read too.
        for i in events.indices {
            let seq = events[i].seq, type = events[i].type
            if type == .system {
                if let f = systemEvent(events[i]) { failures.append(ProjectionFailure(projection: name, seq: seq, error: f)) }
                continue
            }
            while ai < assignments.endIndex && assignments[ai].seq < seq { ai += 1 }
            guard ai < assignments.endIndex, assignments[ai].seq == seq else { continue }
            let pid = assignments[ai].profile
            let timestamp = events[i].timestamp
            if timestamp > clock { clock = timestamp }
            touched.insert(pid)
            guard type == .track else { continue }
            eventAdds.append((pid, seq, i))
            guard !eventIndex.isEmpty, let name = (pre?.items[i - events.startIndex].fields.event ?? events[i].view["event"])?.stringValue,
                  let conds = eventIndex[name] else { continue }
            let view = events[i].view
            for (key, c) in conds where !redefined.contains(key) && c.matches(view) {
                try count(CounterKey(key: key, index: c.index, pid: pid), c, timestamp, tx)
            }
        }

        // Merges: the absorbed profile's counters move to the survivor; it leaves every segment.
        for (absorbed, survivor) in profiles.merges {
            for key in order where !redefined.contains(key) {
                for c in defs[key]!.rule.eventConditions {
                    let from = CounterKey(key: key, index: c.index, pid: absorbed)
                    guard let a = try loadCounter(from, tx) else { continue }
                    let to = CounterKey(key: key, index: c.index, pid: survivor)
                    var s = try loadCounter(to, tx) ?? Counter()
                    s.total += a.total
                    s.times = (s.times + a.times).sorted()
                    counters[to] = s
                    counters[from] = .some(nil)
                    dirty.insert(to); dirty.insert(from)
                }
            }
            try drop(absorbed, tx)
            touched.remove(absorbed)
            touched.insert(survivor)
        }

        // Erased customers leave every segment (the change feed records the exit).
        for pid in profiles.erasures {
            try drop(pid, tx)
            touched.remove(pid)
        }

        // Definitions new in this batch: rebuild their counters from the indexed events, and
        // evaluate everyone.
        var everyone = false
        if !redefined.isEmpty {
            try backfill(events, tx)
            everyone = true
        }
        if clock > startClock || everyone { metaDirty = true }

        // Due times the clock passed.
        if clock != .min {
            try tx.scan(scheduleDB) { k, _ in
                guard k.count == 16 else { return true }
                let due = Micros(bitPattern: UInt64(bigEndianBytes: k, at: 0) ^ (1 << 63))
                guard due <= clock else { return false }
                let pid = UInt64(bigEndianBytes: k, at: 8)
                touched.insert(pid)
                return true
            }
        }

        var pids: [UInt64]
        if everyone {
            var all: Set<UInt64> = touched
            try tx.scan(profiles.profiles) { k, _ in all.insert(UInt64(nativeKey: k)); return true }
            for a in assignments { all.insert(a.profile) }
            pids = all.sorted()
        } else {
            pids = touched.sorted()
        }
        for pid in pids { try evaluate(pid, tx) }

        // The daily tick: global built-ins (VIP, RFM) rank every customer with orders.
        if clock != .min {
            let day = Int64(Timestamp.day(clock))
            if day > tick || everyone {
                try globalTick(tx)
                tick = day
                metaDirty = true
            }
        }
        return failures
    }

    private func systemEvent(_ e: Event) -> String? {
        let v = e.view
        guard v["event"]?.isString("Segment Defined") == true else { return nil }
        guard let props = v["properties"]?.json, let key = props["key"]?.stringValue else { return "a Segment Defined event without properties.key" }
        var refs: [String: [String]] = [:]
        for (k, d) in defs where !d.builtin { refs[k] = d.rule.references }
        let body: JSON = .object([("name", props["name"] ?? .string(key)), ("rule", props["rule"] ?? .null)])
        do {
            let valid = try SegmentValidation.validate(key: key, body: body, existing: refs)
            let rule = try RuleParser.parse(valid["rule"]!)
            let previous = defs[key]
            let d = SegmentDefinition(key: key, name: valid["name"]?.stringValue ?? key, ruleJSON: valid["rule"]!, rule: rule,
                                      builtin: false, seq: e.seq, definedAt: e.timestamp, version: (previous?.version ?? 0) + 1)
            defs[key] = d
            newDefs[key] = d
            redefined.insert(key)
            rebuildOrder()
            return nil
        } catch {
            return "segment \(key): \(error)"
        }
    }

    // MARK: Definitions

    private func loadDefinitions(_ tx: borrowing ReadTransaction) throws {
        // The stored definitions as bytes; decoded (rules parsed, order and event index built)
        // only when they differ from the last batch's: ≈ 150 µs a batch otherwise, which in
        // the live tail's small batches was a few µs an event.
        var stored: [[UInt8]] = []
        try tx.scan(defsDB) { _, v in
            stored.append(Array(v))
            return true
        }
        if !stored.isEmpty, let c = decodedDefinitions, c.stored == stored {
            defs = c.defs
            order = c.order
            ordered = c.ordered
            eventIndex = c.eventIndex
            return
        }
        defs = [:]
        for v in stored {
            let d = try v.withUnsafeBytes { try SegmentDefinition.decode($0) }
            defs[d.key] = d
        }
        if defs.isEmpty {
            for d in BuiltinSegments.all {
                defs[d.key] = d
                newDefs[d.key] = d
                redefined.insert(d.key)
            }
            decodedDefinitions = nil
            rebuildOrder()
            return
        }
        rebuildOrder()
        decodedDefinitions = (stored, defs, order, ordered, eventIndex)
    }

    /// The definitions `loadDefinitions` last decoded, with the bytes they were decoded from.
    /// Kept across batches (`reset` leaves it): it is only ever used when the bytes are equal.
    private var decodedDefinitions: (stored: [[UInt8]], defs: [String: SegmentDefinition], order: [String], ordered: [SegmentDefinition],
                                     eventIndex: [String: [(String, EventCondition)]])?

    /// Keys in evaluation order: every segment after the ones it refers to; ties by key.
    private func rebuildOrder() {
        var out: [String] = []
        var state: [String: Int] = [:]
        func visit(_ k: String) {
            guard state[k] == nil, let d = defs[k] else { return }
            state[k] = 1
            for r in d.rule.references.sorted() { visit(r) }
            state[k] = 2
            out.append(k)
        }
        for k in defs.keys.sorted() { visit(k) }
        order = out
        ordered = out.map { defs[$0]! }
        eventIndex = [:]
        for k in order {
            for c in defs[k]!.rule.eventConditions { eventIndex[c.name, default: []].append((k, c)) }
        }
    }

    // MARK: Counters

    private func counterKeyBytes(_ k: CounterKey) -> [UInt8] {
        Array(k.key.utf8) + [0, UInt8(k.index >> 8), UInt8(k.index & 0xFF), 0] + k.pid.be
    }

    private func loadCounter(_ k: CounterKey, _ tx: borrowing ReadTransaction) throws -> Counter? {
        if let c = counters[k] { return c }
        if redefined.contains(k.key) { return nil }
        let c: Counter? = try tx.withValue(countersDB, key: counterKeyBytes(k)) { raw in
            try raw.withMemoryRebound(to: UInt8.self) { b in
                var r = BinaryReader(b)
                var c = Counter(total: try r.signedVarint())
                for _ in 0..<(try r.varint()) { c.times.append(try r.signedVarint()) }
                return c
            }
        }
        counters[k] = .some(c)
        return c
    }

    private func count(_ k: CounterKey, _ c: EventCondition, _ t: Micros, _ tx: borrowing ReadTransaction) throws {
        var v = try loadCounter(k, tx) ?? Counter()
        switch c.window {
        case .all: v.total += 1
        case .between(let a, let b): if t >= a && t <= b { v.total += 1 }
        case .within:
            v.total += 1
            let i = v.times.partitioningIndex { $0 > t }
            v.times.insert(t, at: i)
        }
        counters[k] = v
        dirty.insert(k)
    }

    /// Rebuilds the counters of the definitions in `redefined` from the track events indexed in
    /// `seg_events` (bodies read from the log) and the batch's own.
    private func backfill(_ events: ArraySlice<Event>, _ tx: borrowing ReadTransaction) throws {
        // Whatever this batch counted for them before their definition event is counted again below.
        for k in counters.keys where redefined.contains(k.key) { counters[k] = nil }
        dirty = dirty.filter { !redefined.contains($0.key) }
        var conds: [String: [(String, EventCondition)]] = [:]
        for key in redefined.sorted() {
            for c in defs[key]?.rule.eventConditions ?? [] { conds[c.name, default: []].append((key, c)) }
        }
        // Which live profile an indexed event belongs to now.
        var batchMerged: [UInt64: UInt64] = [:]
        for (a, s) in profiles.merges { batchMerged[a] = s }
        var cache: [UInt64: UInt64] = [:]
        func live(_ pid: UInt64, _ tx: borrowing ReadTransaction) throws -> UInt64 {
            if let l = cache[pid] { return l }
            var p = try tx.withValue(profiles.merged, key: pid.nativeKey) { UInt64(nativeKey: $0) } ?? pid
            var hops = 0
            while let next = batchMerged[p], hops < 64 { p = next; hops += 1 }
            cache[pid] = p
            return p
        }
        guard !conds.isEmpty else { return }
        func consider(_ pid: UInt64, _ t: Micros, _ view: JSONView, _ tx: borrowing ReadTransaction) throws {
            guard let name = view["event"]?.stringValue, let list = conds[name] else { return }
            let owner = try live(pid, tx)
            for (key, c) in list where c.matches(view) {
                let k = CounterKey(key: key, index: c.index, pid: owner)
                var v = counters[k].flatMap { $0 } ?? Counter()
                switch c.window {
                case .all: v.total += 1
                case .between(let a, let b): if t >= a && t <= b { v.total += 1 }
                case .within(let d):
                    v.total += 1
                    if t > clock - d { v.times.insert(t, at: v.times.partitioningIndex { $0 > t }) }
                }
                counters[k] = v
                dirty.insert(k)
            }
        }
        guard let log else { throw ViewsError("segments: backfilling a definition needs the event log (fold through a ProjectionRunner)") }
        // Scan in chunks so the closure never needs the transaction.
        var from: UInt64 = 0
        while true {
            var seqs: [UInt64] = [], pids: [UInt64] = []
            try tx.scan(eventsDB, from: (from + 1).be) { k, v in
                guard k.count == 8, v.count == 8 else { return true }
                seqs.append(UInt64(bigEndianBytes: k, at: 0))
                pids.append(UInt64(bigEndianBytes: v, at: 0))
                return seqs.count < 4096
            }
            guard let last = seqs.last else { break }
            var j = 0
            var found: [(UInt64, Event)] = []
            try log.forEach(seqs: seqs) { e in
                while seqs[j] < e.seq { j += 1 }
                found.append((pids[j], e))
            }
            for (pid, e) in found { try consider(pid, e.timestamp, e.view, tx) }
            from = last
        }
        for (pid, _, i) in eventAdds { try consider(pid, events[i].timestamp, events[i].view, tx) }
    }

    // MARK: Profiles

    private func recordKey(_ pid: UInt64) -> [UInt8] { pid.be }

    private func loadRecord(_ pid: UInt64, _ tx: borrowing ReadTransaction) throws -> ProfileRecord? {
        if let r = records[pid] { return r }
        let r: ProfileRecord? = try tx.withValue(profilesDB, key: pid.be) { raw in try Self.decodeRecord(raw) }
        records[pid] = .some(r)
        return r
    }

    static func decodeRecord(_ raw: UnsafeRawBufferPointer) throws -> ProfileRecord {
        try raw.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            var rec = ProfileRecord()
            for _ in 0..<(try r.varint()) { rec.segments.append(try r.string()) }
            rec.due = try r.signedVarint()
            rec.orders = try r.signedVarint()
            rec.revenue = try r.signedVarint()
            rec.lastOrderAt = try r.signedVarint()
            return rec
        }
    }

    /// A stored record's segment keys written as JSON strings (what `decodeRecord(_:).segments`
    /// holds), from their bytes, without decoding the record (`encodeRecord` wrote them from
    /// `String`s: valid UTF-8).
    static func writeSegments(record raw: UnsafeRawBufferPointer, to w: JSONText) throws {
        try raw.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            for _ in 0..<(try r.varint()) { w.string(utf8: try r.bytes(try r.count())) }
        }
    }

    static func encodeRecord(_ rec: ProfileRecord) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        w.uint(UInt64(rec.segments.count)); for s in rec.segments { w.string(s) }
        w.int(rec.due); w.int(rec.orders); w.int(rec.revenue); w.int(rec.lastOrderAt)
        return w.bytes
    }

    private func enter(_ key: String, _ pid: UInt64) { move(key, Array(key.utf8) + [0], pid, enter: true) }

    private func exit(_ key: String, _ pid: UInt64) { move(key, Array(key.utf8) + [0], pid, enter: false) }

    /// `pid` enters or leaves segment `key`, whose member and change-feed keys start with
    /// `prefix` (the key's bytes and a NUL; the daily tick builds each once).
    private func move(_ key: String, _ prefix: [UInt8], _ pid: UInt64, enter: Bool) {
        members[prefix + pid.be] = enter ? .some(clock) : .some(nil)
        sizeDelta[key, default: 0] += enter ? 1 : -1
        counter += 1
        let id = lastSeq << 24 | (counter & 0xFF_FFFF)
        var w = ByteWriter(capacity: 24)
        w.uint(pid); w.byte(enter ? 1 : 0); w.int(clock)
        changes.append((prefix + id.be, w.bytes))
        updated[key] = clock
    }

    private func setDue(_ pid: UInt64, old: Micros, new: Micros) {
        guard old != new else { return }
        if old != .max { scheduleDeletes.append((old, pid)) }
        if new != .max { scheduleAdds[pid] = new } else { scheduleAdds[pid] = nil }
    }

    /// A profile that no longer exists (merged away, erased): leaves every segment.
    private func drop(_ pid: UInt64, _ tx: borrowing ReadTransaction) throws {
        guard let rec = try loadRecord(pid, tx) else { return }
        for key in rec.segments { exit(key, pid) }
        setDue(pid, old: rec.due, new: .max)
        records[pid] = .some(nil)
    }

    /// Re-evaluates every non-global segment for `pid` at the current clock.
    private func evaluate(_ pid: UInt64, _ tx: borrowing ReadTransaction) throws {
        guard let state = try profiles.state(pid, tx) else {
            try drop(pid, tx)
            return
        }
        let old = try loadRecord(pid, tx) ?? ProfileRecord()
        var now: Set<String> = []
        for k in old.segments where defs[k]?.rule.isGlobal == true { now.insert(k) }
        var due = Micros.max
        for d in ordered where !d.rule.isGlobal {
            let key = d.key
            // The counters the rule reads, loaded before it is evaluated (the closures cannot hold the transaction).
            var m: [Int: Counter] = [:]
            for c in d.rule.eventConditions {
                if let v = try loadCounter(CounterKey(key: key, index: c.index, pid: pid), tx) { m[c.index] = v }
            }
            let current = now
            var ctx = EvalContext(now: clock, state: state,
                                  counter: { i in m[i].map { ($0.total, $0.times) } ?? (0, []) },
                                  isMember: { current.contains($0) })
            if RuleEvaluator.evaluate(d.rule, &ctx) { now.insert(key) }
            due = min(due, ctx.due)
        }
        var rec = old
        rec.segments = now.sorted()
        for k in rec.segments where !old.segments.contains(k) { enter(k, pid) }
        for k in old.segments where !now.contains(k) { exit(k, pid) }
        setDue(pid, old: old.due, new: due)
        rec.due = due
        rec.orders = state.orderCount
        rec.revenue = state.revenue
        rec.lastOrderAt = state.lastOrderAt ?? .min
        if rec != old || records[pid] == nil { records[pid] = .some(rec) }
    }

    // MARK: Global built-ins

    /// Ranks every customer with orders: VIP = the top 10 % by revenue (CLV); RFM scores 1–5
    /// by quintile of recency, frequency and monetary value; ties broken by profile id.
    ///
    /// In the live tail this runs once per day of event time, on the commit thread, over every
    /// profile: it works on flat rows and bit masks (one bit per global segment, in key order)
    /// and reads a profile's whole record only when its global segments change.
    private func globalTick(_ tx: borrowing ReadTransaction) throws {
        let globals = order.filter { defs[$0]!.rule.isGlobal }.sorted()
        guard !globals.isEmpty else { return }
        guard globals.count <= 32 else { throw ViewsError("segments: more than 32 global segments") }
        let globalBytes = globals.map { Array($0.utf8) }
        var bit: [String: UInt32] = [:]
        for (i, k) in globals.enumerated() { bit[k] = 1 << UInt32(i) }
        func mask(_ segments: [String]) -> UInt32 { segments.reduce(0) { $0 | (bit[$1] ?? 0) } }

        // Every profile's ranking inputs: the stored records, overlaid by the batch's own.
        var scanned: [RankRow] = []
        try tx.scan(profilesDB) { k, v in
            guard k.count == 8 else { return true }
            let pid = UInt64(bigEndianBytes: k, at: 0)
            if records[pid] == nil { scanned.append(try Self.rankRow(pid, v, globalBytes)) }
            return true
        }
        for (pid, r) in records {
            if let r { scanned.append(RankRow(pid: pid, orders: r.orders, revenue: r.revenue, lastOrderAt: r.lastOrderAt, have: mask(r.segments))) }
        }
        scanned.sort { $0.pid < $1.pid }
        let rows = scanned
        // The RFM group's bit of every score triple (r, f, m in 1–5), looked up once.
        var rfm = [UInt32](repeating: 0, count: 125)
        for r in 1...5 { for f in 1...5 { for m in 1...5 { rfm[(r - 1) * 25 + (f - 1) * 5 + m - 1] = bit[BuiltinSegments.rfmGroup(r: r, f: f, m: m)] ?? 0 } } }
        let want = Self.rank(rows, vip: bit["vip"] ?? 0, rfm: rfm)

        // Move the profiles whose global segments changed (in profile order, enters then exits
        // by key), with each key's byte prefix built once.
        let prefixes = globals.map { Array($0.utf8) + [0] }
        // Segments that refer to a global one follow it.
        let followers = order.contains { k in defs[k]!.rule.references.contains { bit[$0] != nil } }
        for i in rows.indices where want[i] != rows[i].have {
            let pid = rows[i].pid
            let entered = want[i] & ~rows[i].have, left = rows[i].have & ~want[i]
            for b in globals.indices where entered & (1 << UInt32(b)) != 0 { move(globals[b], prefixes[b], pid, enter: true) }
            for b in globals.indices where left & (1 << UInt32(b)) != 0 { move(globals[b], prefixes[b], pid, enter: false) }
            guard var rec = try loadRecord(pid, tx) else { continue }
            rec.segments = (rec.segments.filter { bit[$0] == nil } + globals.indices.filter { want[i] & (1 << UInt32($0)) != 0 }.map { globals[$0] }).sorted()
            records[pid] = .some(rec)
            if followers { try evaluate(pid, tx) }
        }
    }

    /// The global segments each row should be in (bit masks, by row): VIP (`vip`) for the top
    /// tenth of customers by revenue, and the RFM group of their quintile scores (1–5) of
    /// recency, frequency and monetary value (`rfm[(r-1)*25 + (f-1)*5 + m-1]`). Customers are
    /// rows with orders; `rows` are in profile order, so a row's index breaks ties as its
    /// profile id does.
    static func rank(_ rows: [RankRow], vip: UInt32, rfm: [UInt32]) -> [UInt32] {
        var want = [UInt32](repeating: 0, count: rows.count)
        var customers: [Int32] = []
        var revenue: [Int64] = [], orders: [Int64] = [], last: [Int64] = []
        for (i, r) in rows.enumerated() where r.orders > 0 {
            customers.append(Int32(i))
            revenue.append(r.revenue); orders.append(r.orders); last.append(r.lastOrderAt)
        }
        let n = customers.count
        guard n > 0 else { return want }
        let byRevenue = Self.ascending(revenue)
        // VIP: from the top revenue down; equal revenues (a run in `byRevenue`) by position.
        let vipCount = (n + 9) / 10
        var vips = 0, end = n
        while vips < vipCount {
            var start = end - 1
            while start > 0 && revenue[Int(byRevenue[start - 1])] == revenue[Int(byRevenue[end - 1])] { start -= 1 }
            for c in byRevenue[start..<end] where vips < vipCount {
                want[Int(customers[Int(c)])] |= vip
                vips += 1
            }
            end = start
        }
        func scores(_ sorted: [Int32]) -> [Int] {
            var out = [Int](repeating: 0, count: n)
            for (rank, c) in sorted.enumerated() { out[Int(c)] = 1 + rank * 5 / n }
            return out
        }
        let r = scores(Self.ascending(last)), f = scores(Self.ascending(orders)), m = scores(byRevenue)
        for c in 0..<n { want[Int(customers[c])] |= rfm[(r[c] - 1) * 25 + (f[c] - 1) * 5 + m[c] - 1] }
        return want
    }

    /// The positions of `key` ordered by value, ties by position: a least-significant-byte
    /// radix sort (stable, so equal values keep their positions' order) that skips the bytes
    /// every value shares. A comparison sort of a few thousand customers took most of a tick.
    static func ascending(_ key: [Int64]) -> [Int32] {
        let n = key.count
        var order = Array(Int32(0)..<Int32(n)), spare = [Int32](repeating: 0, count: n)
        let biased = key.map { UInt64(bitPattern: $0) ^ (1 << 63) }
        var all: UInt64 = ~0, any: UInt64 = 0
        for v in biased { all &= v; any |= v }
        var counts = [Int](repeating: 0, count: 257)
        for shift in stride(from: UInt64(0), to: 64, by: 8) where ((all ^ any) >> shift) & 0xFF != 0 {
            for i in counts.indices { counts[i] = 0 }
            biased.withUnsafeBufferPointer { v in
                order.withUnsafeBufferPointer { from in
                    spare.withUnsafeMutableBufferPointer { to in
                        for p in from { counts[Int((v[Int(p)] >> shift) & 0xFF) + 1] += 1 }
                        for i in 1..<257 { counts[i] += counts[i - 1] }
                        for p in from {
                            let d = Int((v[Int(p)] >> shift) & 0xFF)
                            to[counts[d]] = p
                            counts[d] += 1
                        }
                    }
                }
            }
            swap(&order, &spare)
        }
        return order
    }

    /// What the daily tick ranks a profile by, read from its stored record without decoding it.
    struct RankRow {
        var pid: UInt64
        var orders: Int64
        var revenue: Int64
        var lastOrderAt: Micros
        /// The global segments the profile is in: bit i for `globals[i]`.
        var have: UInt32
    }

    static func rankRow(_ pid: UInt64, _ raw: UnsafeRawBufferPointer, _ globals: [[UInt8]]) throws -> RankRow {
        try raw.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            var have: UInt32 = 0
            for _ in 0..<(try r.varint()) {
                let s = try r.bytes(Int(try r.varint()))
                for (i, g) in globals.enumerated() where g.count == s.count && g.elementsEqual(s) { have |= 1 << UInt32(i) }
            }
            _ = try r.signedVarint()  // due
            return RankRow(pid: pid, orders: try r.signedVarint(), revenue: try r.signedVarint(), lastOrderAt: try r.signedVarint(), have: have)
        }
    }

    // MARK: Writing

    private func metaInt(_ tx: borrowing ReadTransaction, _ key: String) throws -> Int64? {
        try tx.withValue(metaDB, key: Array(key.utf8)) { $0.loadUnaligned(as: Int64.self) }
    }

    private static func int64Bytes(_ v: Int64) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }

    public func write(_ tx: borrowing WriteTransaction) throws {
        for (key, d) in newDefs.sorted(by: { $0.key < $1.key }) {
            try tx.put(defsDB, key: Array(key.utf8), value: d.encode())
        }
        // Counters of (re)defined segments are rebuilt whole.
        for key in redefined.sorted() {
            let prefix = Array(key.utf8) + [0]
            var doomed: [[UInt8]] = []
            try tx.scan(countersDB, from: prefix) { k, _ in
                guard k.count > prefix.count, Array(k.prefix(prefix.count)) == prefix else { return false }
                doomed.append(Array(k))
                return true
            }
            for k in doomed { _ = try tx.delete(countersDB, key: k) }
        }
        for k in dirty.sorted(by: { ($0.key, $0.index, $0.pid) < ($1.key, $1.index, $1.pid) }) {
            let key = counterKeyBytes(k)
            guard let v = counters[k] ?? nil else {
                _ = try tx.delete(countersDB, key: key)
                continue
            }
            var w = ByteWriter(capacity: 16)
            var kept: [Micros] = []
            if let c = defs[k.key]?.rule.eventConditions.first(where: { $0.index == k.index }) {
                kept = v.times.filter { c.keeps($0, now: clock) }
            }
            w.int(v.total)
            w.uint(UInt64(kept.count)); for t in kept { w.int(t) }
            try tx.put(countersDB, key: key, value: w.bytes)
        }
        for (pid, rec) in records.sorted(by: { $0.key < $1.key }) {
            if let rec { try tx.put(profilesDB, key: pid.be, value: Self.encodeRecord(rec)) } else { _ = try tx.delete(profilesDB, key: pid.be) }
        }
        for (k, v) in members.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            if let v { var w = ByteWriter(capacity: 10); w.int(v); try tx.put(membersDB, key: k, value: w.bytes) } else { _ = try tx.delete(membersDB, key: k) }
        }
        for (due, pid) in scheduleDeletes { _ = try tx.delete(scheduleDB, key: Self.scheduleKey(due, pid)) }
        for (pid, due) in scheduleAdds.sorted(by: { $0.key < $1.key }) { try tx.put(scheduleDB, key: Self.scheduleKey(due, pid), value: []) }
        for (k, v) in changes { try tx.put(changesDB, key: k, value: v) }
        for (pid, seq, _) in eventAdds { try tx.put(eventsDB, key: seq.be, value: pid.be, flags: .append) }
        for (key, d) in sizeDelta.sorted(by: { $0.key < $1.key }) where d != 0 {
            let k = Array("size/\(key)".utf8)
            let old = try tx.withValue(metaDB, key: k) { $0.loadUnaligned(as: Int64.self) } ?? 0
            try tx.put(metaDB, key: k, value: Self.int64Bytes(old + d))
        }
        for (key, t) in updated.sorted(by: { $0.key < $1.key }) {
            try tx.put(metaDB, key: Array("updated/\(key)".utf8), value: Self.int64Bytes(t))
        }
        if metaDirty {
            try tx.put(metaDB, key: Array("clock".utf8), value: Self.int64Bytes(clock))
            try tx.put(metaDB, key: Array("tick".utf8), value: Self.int64Bytes(tick))
        }
    }

    static func scheduleKey(_ due: Micros, _ pid: UInt64) -> [UInt8] { (UInt64(bitPattern: due) ^ (1 << 63)).be + pid.be }
}
