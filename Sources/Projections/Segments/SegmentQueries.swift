import EventLog
import Foundation
import JSONCore
import LMDB

/// Read access to the segment views of one generation (any thread).
public struct SegmentReader: Sendable {
    public let generation: ViewGeneration
    let s: SegmentProjection

    public init(_ generation: ViewGeneration) throws {
        guard let s = generation.projection(named: SegmentProjection.projectionName) as? SegmentProjection else {
            throw ViewsError("generation \(generation.name) has no segments projection")
        }
        self.generation = generation
        self.s = s
    }

    private func int64(_ tx: borrowing ReadTransaction, _ key: String) throws -> Int64? {
        try tx.withValue(s.metaDB, key: Array(key.utf8)) { $0.loadUnaligned(as: Int64.self) }
    }

    private func render(_ d: SegmentDefinition, _ tx: borrowing ReadTransaction) throws -> JSON {
        var o = d.json.objectValue ?? []
        o.append(("size", .int(try int64(tx, "size/\(d.key)") ?? 0)))
        o.append(("updated", try int64(tx, "updated/\(d.key)").map { .string(Timestamp.format($0)) } ?? .null))
        return .object(o)
    }

    /// Every segment (built-ins included) with its size and the logical time it last changed, by key.
    public func list() throws -> [JSON] {
        try generation.environment.read { tx in
            var defs: [SegmentDefinition] = []
            try tx.scan(s.defsDB) { _, v in defs.append(try SegmentDefinition.decode(v)); return true }
            return try defs.map { try render($0, tx) }
        }
    }

    /// One segment's definition, size and last change; nil when not defined.
    public func segment(_ key: String) throws -> JSON? {
        try generation.environment.read { tx in
            guard let d = try tx.withValue(s.defsDB, key: Array(key.utf8), { try SegmentDefinition.decode($0) }) else { return nil }
            return try render(d, tx)
        }
    }

    /// The rule references of every user-defined segment (for validating a new definition).
    public func references() throws -> [String: [String]] {
        try generation.environment.read { tx in
            var out: [String: [String]] = [:]
            try tx.scan(s.defsDB) { _, v in
                let d = try SegmentDefinition.decode(v)
                if !d.builtin { out[d.key] = d.rule.references }
                return true
            }
            return out
        }
    }

    /// Members in profile-id order after `after` (a profile id), at most `limit`:
    /// (profile id, entered at).
    public func members(_ key: String, after: UInt64? = nil, limit: Int = 100) throws -> [(profile: UInt64, entered: Micros)] {
        try generation.environment.read { tx in
            let prefix = Array(key.utf8) + [0]
            var out: [(UInt64, Micros)] = []
            let from = prefix + (after.map { ($0 == .max ? $0 : $0 + 1).be } ?? [])
            try tx.scan(s.membersDB, from: from) { k, v in
                guard k.count == prefix.count + 8, Array(k.prefix(prefix.count)) == prefix else { return false }
                let pid = UInt64(bigEndianBytes: k, at: prefix.count)
                if let after, pid <= after { return true }
                let t = try v.withMemoryRebound(to: UInt8.self) { b in var r = BinaryReader(b); return try r.signedVarint() }
                out.append((pid, t))
                return out.count < limit
            }
            return out
        }
    }

    /// The enter/exit feed after change id `after`, oldest first: (id, profile, entered?, logical time).
    public func changes(_ key: String, after: UInt64 = 0, limit: Int = 100) throws -> [(id: UInt64, profile: UInt64, enter: Bool, time: Micros)] {
        try generation.environment.read { tx in
            let prefix = Array(key.utf8) + [0]
            var out: [(UInt64, UInt64, Bool, Micros)] = []
            try tx.scan(s.changesDB, from: prefix + (after == .max ? after : after + 1).be) { k, v in
                guard k.count == prefix.count + 8, Array(k.prefix(prefix.count)) == prefix else { return false }
                let id = UInt64(bigEndianBytes: k, at: prefix.count)
                let (pid, enter, t) = try v.withMemoryRebound(to: UInt8.self) { b in
                    var r = BinaryReader(b)
                    return (try r.varint(), try r.byte() == 1, try r.signedVarint())
                }
                out.append((id, pid, enter, t))
                return out.count < limit
            }
            return out
        }
    }

    /// The segments profile `pid` is in, by key.
    public func segments(ofProfile pid: UInt64) throws -> [String] {
        try generation.environment.read { tx in
            try tx.withValue(s.profilesDB, key: pid.be) { try SegmentProjection.decodeRecord($0).segments } ?? []
        }
    }

    /// Every member of `key` (for tests and exports).
    public func allMembers(_ key: String) throws -> [UInt64] {
        var out: [UInt64] = []
        var after: UInt64?
        while true {
            let page = try members(key, after: after, limit: 10_000)
            out += page.map(\.profile)
            guard page.count == 10_000, let last = page.last else { return out }
            after = last.profile
        }
    }

    /// The logical clock: the max event time folded.
    public func clock() throws -> Micros? {
        try generation.environment.read { tx in try int64(tx, "clock").flatMap { $0 == .min ? nil : $0 } }
    }

    /// Recomputes every non-global segment of every profile from scratch, at the stored
    /// clock, from the indexed events (bodies read from `log`): what incremental membership must equal.
    public func fullRecompute(log: EventLog) throws -> [String: Set<UInt64>] {
        try generation.environment.read { tx in
            var defs: [String: SegmentDefinition] = [:]
            try tx.scan(s.defsDB) { _, v in let d = try SegmentDefinition.decode(v); defs[d.key] = d; return true }
            let now = try int64(tx, "clock") ?? .min
            // Order: references first.
            var order: [String] = []
            var mark: Set<String> = []
            func visit(_ k: String) {
                guard !mark.contains(k), let d = defs[k] else { return }
                mark.insert(k)
                for r in d.rule.references.sorted() { visit(r) }
                order.append(k)
            }
            for k in defs.keys.sorted() { visit(k) }
            // Every indexed event by live profile.
            var events: [UInt64: [(Micros, [UInt8])]] = [:]
            var mergedTo: [UInt64: UInt64] = [:]
            try tx.scan(s.profiles.merged) { k, v in mergedTo[UInt64(nativeKey: k)] = UInt64(nativeKey: v); return true }
            var indexed: [(seq: UInt64, pid: UInt64)] = []
            try tx.scan(s.eventsDB) { k, v in
                indexed.append((UInt64(bigEndianBytes: k, at: 0), UInt64(bigEndianBytes: v, at: 0)))
                return true
            }
            var owner: [UInt64: UInt64] = [:]
            for (seq, pid) in indexed { owner[seq] = pid }
            try log.forEach(seqs: indexed.map(\.seq)) { e in
                let pid = owner[e.seq]!
                events[mergedTo[pid] ?? pid, default: []].append((e.timestamp, e.payload))
            }
            var globals: [UInt64: [String]] = [:]
            try tx.scan(s.profilesDB) { k, v in
                let rec = try SegmentProjection.decodeRecord(v)
                globals[UInt64(bigEndianBytes: k, at: 0)] = rec.segments.filter { defs[$0]?.rule.isGlobal == true }
                return true
            }
            var out: [String: Set<UInt64>] = [:]
            try tx.scan(s.profiles.profiles) { _, v in
                let state = try ProfileState.decode(v)
                var inSeg: Set<String> = Set(globals[state.id] ?? [])
                for k in order {
                    let d = defs[k]!
                    if d.rule.isGlobal { if inSeg.contains(k) { out[k, default: []].insert(state.id) }; continue }
                    var counts: [Int: (Int64, [Micros])] = [:]
                    for c in d.rule.eventConditions {
                        var total: Int64 = 0
                        var times: [Micros] = []
                        for (t, body) in events[state.id] ?? [] {
                            let view = JSONView(bytes: body)
                            guard view["event"]?.isString(c.name) == true, c.matches(view) else { continue }
                            switch c.window {
                            case .all: total += 1
                            case .between(let a, let b): if t >= a && t <= b { total += 1 }
                            case .within: total += 1; times.append(t)
                            }
                        }
                        counts[c.index] = (total, times.sorted())
                    }
                    let current = inSeg
                    var ctx = EvalContext(now: now, state: state, counter: { counts[$0] ?? (0, []) }, isMember: { current.contains($0) })
                    if RuleEvaluator.evaluate(d.rule, &ctx) {
                        inSeg.insert(k)
                        out[k, default: []].insert(state.id)
                    }
                }
                return true
            }
            return out
        }
    }
}

extension LiveViews {
    /// The segment views of the live generation.
    public var segments: SegmentReader { get throws { try SegmentReader(generation) } }
}
