import EventLog
import Foundation
import JSONCore
import LMDB

/// The periods KPIs are kept at.
public enum Granularity: UInt8, Sendable, CaseIterable {
    case day = 0, week = 1, month = 2

    public init?(name: String) {
        switch name {
        case "day": self = .day
        case "week": self = .week
        case "month": self = .month
        default: return nil
        }
    }

    public var name: String { self == .day ? "day" : self == .week ? "week" : "month" }

    /// The period holding UTC day `day`: the day; the Monday starting its ISO week; year × 12 + month − 1.
    public func period(ofDay day: Int) -> Int {
        switch self {
        case .day: return day
        case .week: return day - ((day % 7 + 7 + 3) % 7)
        case .month:
            let (y, m, _) = Timestamp.civilFromDays(day)
            return y * 12 + m - 1
        }
    }

    /// The first day of `period`.
    public func firstDay(_ period: Int) -> Int {
        self == .month ? Timestamp.daysFromCivil(year: Self.floorDiv(period, 12), month: Self.mod(period, 12) + 1, day: 1) : period
    }

    /// The period after `period`.
    public func next(_ period: Int) -> Int { self == .day ? period + 1 : self == .week ? period + 7 : period + 1 }

    /// `2025-03-01`, `2025-W09` (the Monday's date is used: `2025-02-24`), `2025-03`.
    public func label(_ period: Int) -> String {
        switch self {
        case .day, .week: return Timestamp.formatDay(period)
        case .month: return String(format: "%04d-%02d", Self.floorDiv(period, 12), Self.mod(period, 12) + 1)
        }
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : (a - b + 1) / b }
    static func mod(_ a: Int, _ b: Int) -> Int { ((a % b) + b) % b }
}

/// The counters of one (channel, period) cell. Money in 1/10,000 units.
struct KPICell: Equatable {
    static let fieldCount = 17
    var f = [Int64](repeating: 0, count: KPICell.fieldCount)

    static let active = 0, ordering = 1, returning = 2, newCustomers = 3, orders = 4, revenue = 5, refunds = 6
    static let refundAmount = 7, spend = 8, npsN = 9, npsPromoters = 10, npsDetractors = 11, csatN = 12
    static let csatSatisfied = 13, csatSum = 14, retained = 15, events = 16

    subscript(_ i: Int) -> Int64 {
        get { f[i] }
        set { f[i] = newValue }
    }

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 32)
        w.uint(UInt64(f.count))
        for v in f { w.int(v) }
        return w.bytes
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws -> KPICell {
        try raw.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            var c = KPICell()
            let n = Int(try r.varint())
            for i in 0..<n {
                let v = try r.signedVarint()
                if i < fieldCount { c.f[i] = v }
            }
            return c
        }
    }

    static func += (a: inout KPICell, b: KPICell) { for i in 0..<fieldCount { a.f[i] += b.f[i] } }
}

/// KPIs per day × channel, with week and month cells kept alongside (distinct counts such as
/// active customers are not additive, so each granularity is counted on its own).
/// Channel `""` is every channel together (`all` in the API). Folds after `ProfileProjection`.
///
/// Databases:
/// - `kpi_cells`: channel NUL granularity period BE → `KPICell`
/// - `kpi_activity`: pid BE → `Activity`: the days the customer was active, ordered and
///   ordered again, per channel, and the (cohort, month) pairs counted: exact distinct counts
///   (a customer is new in a week or month when none of its days falls there yet) from one
///   small record per customer instead of a key per customer, period and channel
/// - `kpi_customers`: pid BE → first order day, its channel, order count
/// - `kpi_orders`: order id → empty (an order counts once)
/// - `kpi_cohorts`: cohort month BE ‖ month BE → customers of the cohort who ordered that month
///
/// Merges: the survivor takes the earlier first order (the other's new-customer count is taken
/// back, so a person is one new customer); distinct activity keys already counted for the
/// absorbed profile stay, and the survivor is counted from the merge on.
public final class KPIProjection: Projection, @unchecked Sendable {
    public static let projectionName = "kpis"
    public var name: String { Self.projectionName }
    public let version = 2
    public var configurationDigest: String { "kpis-1" }
    public let databaseNames = ["kpi_cells", "kpi_activity", "kpi_customers", "kpi_orders", "kpi_cohorts"]

    let profiles: ProfileProjection
    var cellsDB: Database!
    var activityDB: Database!
    var customersDB: Database!
    var ordersDB: Database!
    var cohortsDB: Database!

    /// Activity records as this projection's commits last wrote them, kept decoded for the
    /// next batches: a customer active now is touched batch after batch by the live tail,
    /// and each time the record was read from the views, decoded, and freed after the commit.
    /// Filled and emptied like the profile states' cache (`StateCache`).
    private let activityCache: CommittedCache<Activity>
    /// Whose snapshots `activityCache` matches: a fold reading another's empties it.
    private let own = OwnCommits()
    /// How many committed activity records `activityCache` keeps by default (a few hundred
    /// bytes each).
    public static let defaultCachedActivities = 65_536

    init(profiles: ProfileProjection, cachedActivities: Int = KPIProjection.defaultCachedActivities) {
        self.profiles = profiles
        activityCache = CommittedCache(capacity: cachedActivities)
    }

    public func open(_ environment: Environment) throws {
        cellsDB = try environment.openDatabase("kpi_cells")
        activityDB = try environment.openDatabase("kpi_activity")
        customersDB = try environment.openDatabase("kpi_customers")
        ordersDB = try environment.openDatabase("kpi_orders")
        cohortsDB = try environment.openDatabase("kpi_cohorts")
    }

    /// Channels by a small id (0 = `""`, every channel): the fold hashes and compares ids,
    /// not strings. Ids are this process's; the stored keys and records hold the names.
    private var channelNames: [String] = [""]
    private var channelBytes: [[UInt8]] = [[]]
    private var channelIDs: [String: UInt16] = ["": 0]
    private lazy var unknownChannel = channelID("unknown")

    func channelID(_ name: String) -> UInt16 {
        if let id = channelIDs[name] { return id }
        let id = UInt16(channelNames.count)
        channelNames.append(name)
        channelBytes.append(Array(name.utf8))
        channelIDs[name] = id
        return id
    }

    /// The id of an event's channel (`unknown` when it has none), matched against the names
    /// seen so far in place (no string is built for a known channel).
    private func channelID(_ view: JSONView?) -> UInt16 {
        let known = view?.withUTF8 { b -> UInt16? in
            if b.isEmpty { return unknownChannel }
            for id in 1..<channelBytes.count where channelBytes[id].withUnsafeBufferPointer({ b.sameBytes(as: $0) }) { return UInt16(id) }
            return nil
        }
        if let known, let known { return known }
        guard let name = view?.stringValue, !name.isEmpty else { return unknownChannel }
        return channelID(name)
    }

    private static func equal(_ a: UnsafeBufferPointer<UInt8>, _ s: StaticString) -> Bool {
        a.sameBytes(as: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// The track events KPIs count by name.
    private enum Named { case spend, order, refund, survey, other }

    private static func named(_ name: JSONView?) -> Named? {
        name?.withUTF8 { b in
            equal(b, "Order Completed") ? .order : equal(b, "Marketing Spend") ? .spend
                : equal(b, "Order Refunded") ? .refund : equal(b, "Survey Responded") ? .survey : .other
        }
    }

    struct CellKey: Hashable { var channel: UInt16; var gran: UInt8; var period: Int32 }
    struct Customer: Equatable { var firstDay: Int32; var channel: String; var orders: Int64 }

    private var cells: [CellKey: KPICell] = [:]
    /// Activity records loaded or changed in the batch; nil = deleted (merged away, erased).
    private var activities: [UInt64: Activity?] = [:]
    private var customers: [UInt64: Customer?] = [:]
    private var newOrders: Set<String> = []
    private var cohorts: [UInt64: Int64] = [:]
    /// The batch's changes encoded ahead of `write` (`prepareWrite`); nil: `write` encodes them.
    private var encoded: [(Database, [UInt8], [UInt8]?)]?

    public func reset() {
        // After a failed or conflicting commit the views may hold what another process wrote.
        activityCache.removeAll()
        own.forget()
        clearBatch()
    }

    public func didCommit() {
        // The committed records go to the cache, clean; the next batch touching one takes it.
        for (pid, a) in activities {
            if let a {
                a.committed()
                activityCache.insert(pid, a)
            } else {
                activityCache.remove(pid)
            }
        }
        own.didCommit()
        clearBatch()
    }

    private func clearBatch() {
        encoded = nil
        cells.removeAll(keepingCapacity: true)
        deltas.removeAll(keepingCapacity: true)
        activities.removeAll(keepingCapacity: true)
        customers.removeAll(keepingCapacity: true)
        newOrders.removeAll(keepingCapacity: true)
        cohorts.removeAll(keepingCapacity: true)
    }

    // MARK: Keys

    static func period(_ p: Int32) -> [UInt8] { withUnsafeBytes(of: (UInt32(bitPattern: p) ^ 0x8000_0000).bigEndian) { Array($0) } }
    static func unperiod(_ b: UnsafeRawBufferPointer, at o: Int) -> Int32 {
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(b[o + i]) }
        return Int32(bitPattern: v ^ 0x8000_0000)
    }

    func cellKey(_ k: CellKey) -> [UInt8] { Array(channelNames[Int(k.channel)].utf8) + [0, k.gran] + Self.period(k.period) }

    /// Changes the cell in place, loading it first when the batch has not touched it (the
    /// cell's counters are not copied).
    private func update(_ k: CellKey, _ tx: borrowing ReadTransaction, _ change: (inout KPICell) -> Void) throws {
        if let i = cells.index(forKey: k) {
            change(&cells.values[i])
            return
        }
        var c = try tx.withValue(cellsDB, key: cellKey(k)) { try KPICell.decode($0) } ?? KPICell()
        change(&c)
        cells[k] = c
    }

    /// Adds `v` to `field` of the cell.
    private func bump(_ k: CellKey, _ field: Int, _ v: Int64, _ tx: borrowing ReadTransaction) throws {
        try update(k, tx) { $0[field] += v }
    }

    struct DayKey: Hashable { var channel: UInt16; var day: Int32 }
    /// Additive counters of the batch per (channel, day): rolled up into day, week and month
    /// cells of the channel and of all channels once, at the end of the fold.
    private var deltas: [DayKey: KPICell] = [:]

    private func add(_ field: Int, _ v: Int64, day: Int, channel: UInt16) {
        deltas[DayKey(channel: channel, day: Int32(day)), default: KPICell()][field] += v
    }

    private func rollUp(_ tx: borrowing ReadTransaction) throws {
        for (k, d) in deltas {
            for g in Granularity.allCases {
                let p = Int32(g.period(ofDay: Int(k.day)))
                for j in 0..<2 {
                    let ch = j == 0 ? 0 : k.channel
                    try update(CellKey(channel: ch, gran: g.rawValue, period: p), tx) { $0 += d }
                }
            }
        }
        deltas.removeAll(keepingCapacity: true)
    }

    private func activity(_ pid: UInt64, _ tx: borrowing ReadTransaction) throws -> Activity {
        if let a = activities[pid], let a { return a }
        let a = try activityCache.take(pid)
            ?? tx.withValue(activityDB, key: pid.be) { try Activity.decode($0, channelID: channelID) } ?? Activity()
        activities[pid] = .some(a)
        return a
    }

    /// Counts `pid` once per period and channel in `field` (distinct `kind`): in the day's cell
    /// when the day is new for it, in the week's and month's when no other day of theirs is.
    private func distinct(_ kind: UInt8, _ field: Int, _ pid: UInt64, day: Int, channel: UInt16, _ tx: borrowing ReadTransaction) throws {
        let a = try activity(pid, tx)
        let d = Int32(day)
        // The channel's day implies the all-channel day: one lookup for the common case.
        if a.contains(kind, channel, d) { return }
        for j in 0..<2 {
            let ch = j == 0 ? 0 : channel
            let (fresh, week, month) = a.insert(kind, ch, d)
            guard fresh else { continue }
            try bump(CellKey(channel: ch, gran: Granularity.day.rawValue, period: d), field, 1, tx)
            if week { try bump(CellKey(channel: ch, gran: Granularity.week.rawValue, period: Int32(Granularity.week.period(ofDay: day))), field, 1, tx) }
            if month { try bump(CellKey(channel: ch, gran: Granularity.month.rawValue, period: Int32(Granularity.month.period(ofDay: day))), field, 1, tx) }
        }
    }

    private func customer(_ pid: UInt64, _ tx: borrowing ReadTransaction) throws -> Customer? {
        if let c = customers[pid] { return c }
        let c: Customer? = try tx.withValue(customersDB, key: pid.be) { raw in
            try raw.withMemoryRebound(to: UInt8.self) { b in
                var r = BinaryReader(b)
                return Customer(firstDay: Int32(try r.signedVarint()), channel: try r.string(), orders: try r.signedVarint())
            }
        }
        customers[pid] = .some(c)
        return c
    }

    // MARK: Folding

    public func fold(_ events: ArraySlice<Event>, _ tx: borrowing ReadTransaction) throws -> [ProjectionFailure] {
        if !own.isOwn(snapshot: tx.id) { activityCache.removeAll() }
        let assignments = profiles.assignments
        var ai = assignments.startIndex
        // The fields the profile projection read (when it folded exactly these events).
        let pre = profiles.fields(of: events)
        // By index, reading an event's scalars in place: binding each event (or each of its
        // fields) to a local copies it, a reference count on a body the other folds read too.
        for i in events.indices where events[i].type != .system {
            let fields = pre?.items[i - events.startIndex].fields ?? EventFields(events[i].view)
            let day = Timestamp.day(events[i].timestamp)
            let name = events[i].type == .track ? Self.named(fields.event) : nil
            if name == .spend {
                let props = fields.properties
                let ch = props?["channel"]?.stringValue ?? "unknown"
                add(KPICell.spend, Money(amount: props?["amount"]?.doubleValue ?? 0), day: day, channel: channelID(ch.isEmpty ? "unknown" : ch))
                continue
            }
            let seq = events[i].seq
            while ai < assignments.endIndex && assignments[ai].seq < seq { ai += 1 }
            guard ai < assignments.endIndex, assignments[ai].seq == seq else { continue }
            let pid = assignments[ai].profile
            let channel = channelID(fields.channel)
            try distinct(Activity.active, KPICell.active, pid, day: day, channel: channel, tx)
            add(KPICell.events, 1, day: day, channel: channel)
            guard let name else { continue }
            if name == .order {
                let props = fields.properties
                if let orderID = props?["order_id"]?.scalarText {
                    if newOrders.contains(orderID) { continue }
                    if try tx.withValue(ordersDB, key: Array(orderID.utf8), { _ in true }) == true { continue }
                    newOrders.insert(orderID)
                }
                try order(pid, day: day, channel: channel, value: Money(amount: ProfileState.orderValue(props)), tx)
            } else if name == .refund {
                let props = fields.properties
                add(KPICell.refunds, 1, day: day, channel: channel)
                let amount = props?["total"]?.doubleValue ?? props?["revenue"]?.doubleValue ?? props?["amount"]?.doubleValue ?? 0
                add(KPICell.refundAmount, Money(amount: amount), day: day, channel: channel)
            } else if name == .survey {
                let props = fields.properties
                guard let score = props?["score"]?.intValue else { continue }
                if props?["survey"]?.isString("nps") == true {
                    add(KPICell.npsN, 1, day: day, channel: channel)
                    if score >= 9 { add(KPICell.npsPromoters, 1, day: day, channel: channel) }
                    if score <= 6 { add(KPICell.npsDetractors, 1, day: day, channel: channel) }
                } else if props?["survey"]?.isString("csat") == true {
                    add(KPICell.csatN, 1, day: day, channel: channel)
                    add(KPICell.csatSum, score, day: day, channel: channel)
                    if score >= 4 { add(KPICell.csatSatisfied, 1, day: day, channel: channel) }
                }
            }
        }
        for (absorbed, survivor) in profiles.merges { try merge(absorbed, into: survivor, tx) }
        // Erased customers keep no activity record (their counts stay in the cells).
        for pid in profiles.erasures { activities[pid] = .some(nil) }
        try rollUp(tx)
        return []
    }

    private func order(_ pid: UInt64, day: Int, channel: UInt16, value: Int64, _ tx: borrowing ReadTransaction) throws {
        add(KPICell.orders, 1, day: day, channel: channel)
        add(KPICell.revenue, value, day: day, channel: channel)
        // Retention: a customer ordering in month m for the first time is retained in m when
        // they ordered in m − 1, and makes m + 1 retained when they already ordered then.
        let month = Int32(Granularity.month.period(ofDay: day))
        let a = try activity(pid, tx)
        let firstThisMonth = !a.any(Activity.ordering, 0, inMonth: month)
        try distinct(Activity.ordering, KPICell.ordering, pid, day: day, channel: channel, tx)
        if firstThisMonth {
            if a.any(Activity.ordering, 0, inMonth: month - 1) {
                try bump(CellKey(channel: 0, gran: Granularity.month.rawValue, period: month), KPICell.retained, 1, tx)
            }
            if a.any(Activity.ordering, 0, inMonth: month + 1) {
                try bump(CellKey(channel: 0, gran: Granularity.month.rawValue, period: month + 1), KPICell.retained, 1, tx)
            }
        }
        var c = try customer(pid, tx)
        if var existing = c {
            if day > Int(existing.firstDay) { try distinct(Activity.returning, KPICell.returning, pid, day: day, channel: channel, tx) }
            if day < Int(existing.firstDay) {
                // An earlier first order arrived late: the customer is new on that day instead.
                add(KPICell.newCustomers, -1, day: Int(existing.firstDay), channel: channelID(existing.channel))
                add(KPICell.newCustomers, 1, day: day, channel: channel)
                existing.firstDay = Int32(day)
                existing.channel = channelNames[Int(channel)]
            }
            existing.orders += 1
            c = existing
        } else {
            add(KPICell.newCustomers, 1, day: day, channel: channel)
            c = Customer(firstDay: Int32(day), channel: channelNames[Int(channel)], orders: 1)
        }
        customers[pid] = .some(c)
        let cohort = Int32(Granularity.month.period(ofDay: Int(c!.firstDay)))
        if a.markCohort(cohort, month) {
            let k = UInt64(UInt32(bitPattern: cohort) ^ 0x8000_0000) << 32 | UInt64(UInt32(bitPattern: month) ^ 0x8000_0000)
            if let v = cohorts[k] { cohorts[k] = v + 1 } else {
                let stored = try tx.withValue(cohortsDB, key: k.be) { $0.loadUnaligned(as: Int64.self) } ?? 0
                cohorts[k] = stored + 1
            }
        }
    }

    private func merge(_ absorbed: UInt64, into survivor: UInt64, _ tx: borrowing ReadTransaction) throws {
        // No event goes to the absorbed profile again: what it was counted for stays counted,
        // and the survivor is counted from its own record on.
        activities[absorbed] = .some(nil)
        guard let a = try customer(absorbed, tx) else { return }
        customers[absorbed] = .some(nil)
        guard var s = try customer(survivor, tx) else {
            customers[survivor] = .some(a)
            return
        }
        // One person, one new customer: the later first order is taken back.
        let later = a.firstDay < s.firstDay ? s : a
        add(KPICell.newCustomers, -1, day: Int(later.firstDay), channel: channelID(later.channel))
        if a.firstDay < s.firstDay { s.firstDay = a.firstDay; s.channel = a.channel }
        s.orders += a.orders
        customers[survivor] = .some(s)
    }

    // MARK: Writing

    public func write(_ tx: borrowing WriteTransaction) throws {
        own.wrote(tx.id)
        for (db, key, value) in encoded ?? entries() {
            if let value { try tx.put(db, key: key, value: value) } else { _ = try tx.delete(db, key: key) }
        }
        encoded = nil
    }

    /// The batch's changes encoded ahead of `write`, on the thread that folded them (the live
    /// tail's helper, while the commit thread folds segments).
    public func prepareWrite() { encoded = entries() }

    /// What `write` puts (a value) and deletes (nil), in the order it does.
    private func entries() -> [(Database, [UInt8], [UInt8]?)] {
        let names = channelNames
        var out: [(Database, [UInt8], [UInt8]?)] = []
        out.reserveCapacity(cells.count + activities.count + customers.count + newOrders.count + cohorts.count)
        for (k, c) in cells.sorted(by: { (names[Int($0.key.channel)], $0.key.gran, $0.key.period) < (names[Int($1.key.channel)], $1.key.gran, $1.key.period) }) {
            out.append((cellsDB, cellKey(k), c.encode()))
        }
        for (pid, a) in activities.sorted(by: { $0.key < $1.key }) {
            if let a {
                if a.changed { out.append((activityDB, pid.be, a.encode(names))) }
            } else {
                out.append((activityDB, pid.be, nil))
            }
        }
        for (pid, c) in customers.sorted(by: { $0.key < $1.key }) {
            if let c {
                var w = ByteWriter(capacity: 24)
                w.int(Int64(c.firstDay)); w.string(c.channel); w.int(c.orders)
                out.append((customersDB, pid.be, w.bytes))
            } else {
                out.append((customersDB, pid.be, nil))
            }
        }
        for o in newOrders.sorted() { out.append((ordersDB, Array(o.utf8), [])) }
        for (k, v) in cohorts.sorted(by: { $0.key < $1.key }) {
            out.append((cohortsDB, k.be, withUnsafeBytes(of: v) { Array($0) }))
        }
        return out
    }
}

/// One customer's distinct-count memory: per kind (active, ordering, returning) and channel
/// (`""` = all), the sorted days it was counted on; and the (cohort, month) pairs counted.
final class Activity {
    static let active: UInt8 = 0, ordering: UInt8 = 1, returning: UInt8 = 2

    /// `channel`: the projection's channel id (see `KPIProjection.channelID`).
    struct DaySet { var kind: UInt8; var channel: UInt16; var days: [Int32] }
    var sets: [DaySet] = []
    var cohorts: [UInt64] = []
    private(set) var changed = false

    private func index(_ kind: UInt8, _ channel: UInt16) -> Int? {
        sets.firstIndex { $0.kind == kind && $0.channel == channel }
    }

    func contains(_ kind: UInt8, _ channel: UInt16, _ day: Int32) -> Bool {
        guard let i = index(kind, channel) else { return false }
        return sets[i].days.withUnsafeBufferPointer { days in
            if let last = days.last, last == day { return true }
            let p = days.partitioningIndex { $0 >= day }
            return p < days.count && days[p] == day
        }
    }

    /// Whether any day of the set falls in `[from, to)`.
    private static func any(_ days: UnsafeBufferPointer<Int32>, _ from: Int32, _ to: Int32) -> Bool {
        let p = days.partitioningIndex { $0 >= from }
        return p < days.count && days[p] < to
    }

    func any(_ kind: UInt8, _ channel: UInt16, inMonth month: Int32) -> Bool {
        guard let i = index(kind, channel) else { return false }
        let g = Granularity.month
        let from = Int32(g.firstDay(Int(month))), to = Int32(g.firstDay(g.next(Int(month))))
        return sets[i].days.withUnsafeBufferPointer { Self.any($0, from, to) }
    }

    /// Adds `day`; whether it is new, and whether its week and its month are new to the set.
    func insert(_ kind: UInt8, _ channel: UInt16, _ day: Int32) -> (Bool, Bool, Bool) {
        let i: Int
        if let found = index(kind, channel) { i = found } else {
            sets.append(DaySet(kind: kind, channel: channel, days: []))
            i = sets.count - 1
        }
        let week = Int32(Granularity.week.period(ofDay: Int(day)))
        let month = Granularity.month.period(ofDay: Int(day))
        let monthFrom = Int32(Granularity.month.firstDay(month)), monthTo = Int32(Granularity.month.firstDay(month + 1))
        // Read through a buffer (no copy of the array is alive when it is inserted into).
        let (p, present, newWeek, newMonth) = sets[i].days.withUnsafeBufferPointer { days in
            let p = days.partitioningIndex { $0 >= day }
            return (p, p < days.count && days[p] == day, !Self.any(days, week, week + 7), !Self.any(days, monthFrom, monthTo))
        }
        if present { return (false, false, false) }
        sets[i].days.insert(day, at: p)
        changed = true
        return (true, newWeek, newMonth)
    }

    /// Its changes were committed: it now holds what the views hold.
    func committed() { changed = false }

    /// Marks (cohort, month); true when it is new.
    func markCohort(_ cohort: Int32, _ month: Int32) -> Bool {
        let k = UInt64(UInt32(bitPattern: cohort) ^ 0x8000_0000) << 32 | UInt64(UInt32(bitPattern: month) ^ 0x8000_0000)
        let p = cohorts.partitioningIndex { $0 >= k }
        if p < cohorts.count && cohorts[p] == k { return false }
        cohorts.insert(k, at: p)
        changed = true
        return true
    }

    /// `names`: channel names by id.
    func encode(_ names: [String]) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        // Sets in (kind, channel name) order: the bytes do not depend on the order days arrived in.
        let ordered = sets.sorted { ($0.kind, names[Int($0.channel)]) < ($1.kind, names[Int($1.channel)]) }
        w.uint(UInt64(ordered.count))
        for s in ordered {
            w.byte(s.kind)
            w.string(names[Int(s.channel)])
            w.uint(UInt64(s.days.count))
            var prev: Int32 = 0
            for (j, d) in s.days.enumerated() {
                if j == 0 { w.int(Int64(d)) } else { w.uint(UInt64(d - prev)) }
                prev = d
            }
        }
        w.uint(UInt64(cohorts.count))
        var prev: UInt64 = 0
        for c in cohorts { w.uint(c - prev); prev = c }
        return w.bytes
    }

    /// `channelID`: the id of a channel name.
    static func decode(_ raw: UnsafeRawBufferPointer, channelID: (String) -> UInt16) throws -> Activity {
        try raw.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            let a = Activity()
            for _ in 0..<(try r.varint()) {
                let kind = try r.byte()
                let channel = channelID(try r.string())
                let n = Int(try r.varint())
                var days: [Int32] = []
                days.reserveCapacity(n)
                var prev: Int32 = 0
                for j in 0..<n {
                    prev = j == 0 ? Int32(try r.signedVarint()) : prev + Int32(try r.varint())
                    days.append(prev)
                }
                a.sets.append(DaySet(kind: kind, channel: channel, days: days))
            }
            var prev: UInt64 = 0
            for _ in 0..<(try r.varint()) {
                prev += try r.varint()
                a.cohorts.append(prev)
            }
            return a
        }
    }
}
