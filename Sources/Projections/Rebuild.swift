// The rebuild engine behind `touchstone-replay` and `POST /v1/admin/replay`: replays the log
// into a views generation — all projections or some, the whole log or a prefix of it (or the
// events dated up to a time) — resumably, with progress, then optionally makes it live.
//
// - A rebuild of a subset starts from a consistent copy of the live generation (one LMDB
//   snapshot: `mdb_env_copy2`), whose rebuilt projections are then emptied; the others keep
//   their databases, checkpoints and failures and only catch up with the tail.
// - The in-progress target is recorded in `<data>/views/REBUILDING`; a rerun of the same plan
//   continues from the target's checkpoints (every batch commits with its checkpoint).
// - One rebuild at a time per data directory (`flock` on `<data>/views/REBUILDING.lock`; the
//   kernel drops it when the process dies, even by SIGKILL).
// - A live switch catches the target up with the log's tail, then replaces `CURRENT`
//   atomically. A running server adopts it on its next poll after catching it up with what
//   arrived meanwhile, so every acknowledged event is in the new generation.

import EventLog
import Foundation
import JSONCore
import LMDB

/// What to rebuild, how far, and what to do with the result.
public struct RebuildPlan: Sendable, Equatable {
    /// The projections to rebuild (nil: all). The others are copied from the live generation.
    public var projections: [String]?
    /// Stop after this seq (time travel): the views of the log truncated there.
    public var untilSeq: UInt64?
    /// Fold only the events whose event time (`timestamp`) is at or before this (µs):
    /// the views as the history dated up to then describes them, late arrivals included.
    public var untilTime: Int64?
    /// The target generation's name (nil: the next numbered one, or `until-…` when time travelling).
    public var target: String?
    /// Make the result live (ignored for time travel, which never touches the live views).
    public var switchLive: Bool
    /// Numbered generations kept after a switch (besides the live one).
    public var keep: Int
    /// Replace an existing target generation of that name.
    public var replace: Bool
    public var batchSize: Int

    public init(projections: [String]? = nil, untilSeq: UInt64? = nil, untilTime: Int64? = nil, target: String? = nil,
                switchLive: Bool = true, keep: Int = 3, replace: Bool = false, batchSize: Int = 32768) {
        self.projections = projections
        self.untilSeq = untilSeq
        self.untilTime = untilTime
        self.target = target
        self.switchLive = switchLive
        self.keep = keep
        self.replace = replace
        self.batchSize = batchSize
    }

    public var isTimeTravel: Bool { untilSeq != nil || untilTime != nil }

    /// The default name of a time-travel generation.
    public func defaultTimeTravelName(effectiveSeq: UInt64?) -> String {
        var parts = ["until"]
        if let s = effectiveSeq ?? untilSeq { parts.append(String(s)) }
        if let t = untilTime {
            parts.append(Timestamp.format(t).filter { $0.isNumber || $0 == "T" || $0 == "Z" })
        }
        return parts.joined(separator: "-")
    }
}

/// Where a rebuild is.
public struct RebuildProgress: Sendable {
    public enum Phase: String, Sendable { case preparing, folding, catchingUp = "catching-up", switching, done }
    public var phase: Phase
    public var generation: String
    /// Seqs this run reads: (startSeq, endSeq]; `seq` is the last one read.
    public var startSeq: UInt64
    public var endSeq: UInt64
    public var seq: UInt64
    /// Events folded so far in this run, per projection.
    public var perProjection: [String: Int]
    public var elapsed: Double
    /// Whether this run continued an interrupted rebuild.
    public var resumed: Bool

    public var eventsTotal: UInt64 { endSeq - min(startSeq, endSeq) }
    public var eventsDone: UInt64 { min(seq, endSeq) - min(startSeq, min(seq, endSeq)) }
    public var fraction: Double { eventsTotal == 0 ? 1 : Double(eventsDone) / Double(eventsTotal) }
    public var eventsPerSecond: Double { elapsed > 0 ? Double(eventsDone) / elapsed : 0 }
    /// Seconds left at the current rate (nil before there is a rate).
    public var eta: Double? {
        let rate = eventsPerSecond
        return rate > 0 ? Double(eventsTotal - eventsDone) / rate : nil
    }
}

/// What a rebuild did.
public struct RebuildResult: Sendable {
    public var generation: String
    /// The seq every projection of the target has read through.
    public var appliedSeq: UInt64
    /// Events read by this run, and its duration.
    public var events: UInt64
    public var seconds: Double
    public var switched: Bool
    public var resumed: Bool
    /// The target was already built by an earlier run (time travel): nothing to do.
    public var alreadyBuilt: Bool
    public var pruned: [String]
    public var failures: Int
    public var eventsPerSecond: Double { seconds > 0 ? Double(events) / seconds : 0 }
}

/// One projection's comparison in a verification.
public struct ReplayVerifyEntry: Sendable {
    public var projection: String
    public var liveDigest: String
    public var rebuiltDigest: String
    /// The first differing keys (empty when equal).
    public var differences: [String]
    /// The live views were built by another version or configuration of the projection.
    public var liveIsStale: Bool
    public var checkpoint: UInt64
    public var equal: Bool { liveDigest == rebuiltDigest }
}

public struct ReplayVerifyReport: Sendable {
    public var live: String
    public var entries: [ReplayVerifyEntry]
    public var equal: Bool { entries.allSatisfy(\.equal) }
}

/// The rebuild engine over one data directory.
public final class Rebuilder: @unchecked Sendable {
    public let store: ViewStore
    public let log: EventLog
    /// The projections' configuration (nil: as the live generation was built).
    let configured: ProjectionSet?
    /// Tests: take the subset path (copy the live views, empty the rebuilt ones) even for all projections.
    var copyLiveAlways = false

    public init(dataDirectory: String, log: EventLog, set: ProjectionSet? = nil) {
        store = ViewStore(dataDirectory: dataDirectory)
        self.log = log
        configured = set
    }

    var stateFile: String { store.directory + "/REBUILDING" }
    var lockFile: String { store.directory + "/REBUILDING.lock" }

    /// The projection set to build with: the configured one, or the live generation's rules.
    public func projectionSet() throws -> ProjectionSet {
        if let configured { return configured }
        var set = ProjectionSet()
        if let live = store.current(), store.exists(live), let rules = try LiveViews.storedRules(store, live) { set.rules = rules }
        return set
    }

    // MARK: Rebuild

    /// Runs `plan`. `progress` gets a report after each batch (on the calling thread);
    /// `shouldStop` is polled between batches (the rebuild can be resumed later).
    /// `switcher` makes a finished generation live (default: write `CURRENT`; a server
    /// passes `LiveViews.adopt`).
    public func run(_ plan: RebuildPlan, progress: (RebuildProgress) -> Void = { _ in },
                    shouldStop: () -> Bool = { false }, switcher: ((String) throws -> Void)? = nil) throws -> RebuildResult {
        try run(plan, lock: try lock(), progress: progress, shouldStop: shouldStop, switcher: switcher)
    }

    /// Takes the data directory's rebuild lock (`RebuildBusy` when another rebuild holds it).
    func lock() throws -> RebuildLock { try RebuildLock(path: lockFile, directory: store.directory) }

    func run(_ plan: RebuildPlan, lock: RebuildLock, progress: (RebuildProgress) -> Void,
             shouldStop: () -> Bool, switcher: ((String) throws -> Void)?) throws -> RebuildResult {
        defer { lock.release() }
        let clock = ContinuousClock.now
        let set = try projectionSet()
        let all = ProjectionSet.names
        if let unknown = plan.projections?.first(where: { !all.contains($0) }) {
            throw ViewsError("no projection \(unknown) (have: \(all.joined(separator: ", ")))")
        }
        // What the named projections need is rebuilt with them (`make` adds their dependencies).
        let names = set.make(plan.projections).map(\.name)
        if names.isEmpty { throw ViewsError("no projection to rebuild") }
        let subset = names.count < all.count
        let logEnd = log.lastSeq
        if let u = plan.untilSeq, u > logEnd {
            throw ViewsError("--until-seq \(u) is past the end of the log (last seq \(logEnd))")
        }
        let end = min(plan.untilSeq ?? logEnd, logEnd)
        let live = store.current().flatMap { store.exists($0) ? $0 : nil }
        let copyLive = (subset || copyLiveAlways) && !plan.isTimeTravel && live != nil

        // The target: the interrupted rebuild of the same plan, or a fresh one.
        var resumed = false
        var name: String
        let previous = RebuildState.load(stateFile)
        let planKey = RebuildState(generation: "", projections: plan.projections.map { _ in names }, untilSeq: plan.untilSeq,
                                   untilTime: plan.untilTime, copiedFrom: nil)
        if let previous, previous.sameWork(as: planKey), plan.target == nil || plan.target == previous.generation,
           store.exists(previous.generation), previous.generation != live,
           try isCurrent(previous.generation, names: names, set: set) {
            name = previous.generation
            resumed = true
        } else {
            if let previous, previous.generation != live {
                // An interrupted rebuild of another plan: nobody can continue it now.
                try? FileManager.default.removeItem(atPath: store.path(previous.generation))
                try? FileManager.default.removeItem(atPath: store.path(previous.generation) + ".copy")
            }
            try? FileManager.default.removeItem(atPath: stateFile)
            if let t = plan.target {
                try Self.validate(name: t)
                name = t
            } else if plan.isTimeTravel {
                name = plan.defaultTimeTravelName(effectiveSeq: plan.untilSeq.map { _ in end })
            } else {
                name = store.nextName()
            }
            if name == live { throw ViewsError("generation \(name) is the live one; pick another --name") }
            if store.exists(name) || FileManager.default.fileExists(atPath: store.path(name)) {
                if !plan.replace, let done = try existingResult(name, plan: plan, names: names, set: set, end: end) {
                    return done
                }
                guard plan.replace else {
                    throw ViewsError("generation \(name) already exists (pass --replace to rebuild it, or another --name)")
                }
                try FileManager.default.removeItem(atPath: store.path(name))
            }
        }
        var state = planKey
        state.generation = name
        state.copiedFrom = copyLive ? (resumed ? previous?.copiedFrom ?? live : live) : nil
        try state.save(stateFile)

        var report = RebuildProgress(phase: .preparing, generation: name, startSeq: 0, endSeq: end, seq: 0,
                                     perProjection: [:], elapsed: 0, resumed: resumed)
        progress(report)

        // Prepare: a fresh environment, or a snapshot of the live one with the rebuilt projections emptied.
        if copyLive, let source = state.copiedFrom {
            try prepareCopy(of: source, into: name, rebuilding: names, set: set)
        }
        let full = try ViewGeneration(name: name, path: store.path(name), projections: set.make(), readOnly: false)
        if try full.metaValue("config/identity") == nil {
            try full.setMetaValue("config/identity", String(decoding: set.rules.json.jsonBytes(), as: UTF8.self))
        }
        try full.setMetaValue("replay/plan", state.json.jsonBytes().utf8String)
        if plan.untilSeq != nil { try full.setMetaValue("replay/until-seq", String(end)) }
        if let t = plan.untilTime { try full.setMetaValue("replay/until-time", Timestamp.format(t)) }

        // Fold: the named projections only (the copied ones are already there).
        let fold = try ViewGeneration(name: name, path: store.path(name), projections: set.make(names), readOnly: false)
        let start = try fold.projections.map { try fold.checkpoint($0.name) }.min() ?? 0
        report.phase = .folding
        report.startSeq = min(start, end)
        report.seq = report.startSeq
        var read: UInt64 = 0
        read += try foldRange(fold, from: start, through: end, batchSize: plan.batchSize, until: plan.untilTime,
                              shouldStop: shouldStop) { seq, per in
            report.seq = seq
            for (k, v) in per { report.perProjection[k, default: 0] += v }
            report.elapsed = (ContinuousClock.now - clock).seconds
            progress(report)
        }

        var switched = false
        var pruned: [String] = []
        if plan.isTimeTravel {
            try full.setMetaValue("replay/complete", String(end))
        } else {
            // Catch up every projection (copied ones too) with the tail, in rounds, until the
            // rest is small; then switch — the adopter folds the last few events itself.
            report.phase = .catchingUp
            var target = log.lastSeq
            for _ in 0..<20 {
                let from = try full.appliedSeq()
                if from >= target { break }
                report.endSeq = target
                read += try foldRange(full, from: from, through: target, batchSize: plan.batchSize, until: nil,
                                      shouldStop: shouldStop) { seq, per in
                    report.seq = seq
                    for (k, v) in per { report.perProjection[k, default: 0] += v }
                    report.elapsed = (ContinuousClock.now - clock).seconds
                    progress(report)
                }
                let next = log.lastSeq
                if next - target <= UInt64(plan.batchSize) { break }
                target = next
            }
            try full.setMetaValue("replay/complete", String(try full.appliedSeq()))
            try full.sync()
            if plan.switchLive {
                report.phase = .switching
                progress(report)
                if let switcher { try switcher(name) } else { try store.setCurrent(name) }
                switched = true
            }
        }
        try full.sync()
        try? FileManager.default.removeItem(atPath: stateFile)
        if switched { pruned = try store.prune(keep: plan.keep, except: [name]) }
        report.phase = .done
        report.elapsed = (ContinuousClock.now - clock).seconds
        progress(report)
        return RebuildResult(generation: name, appliedSeq: try full.appliedSeq(), events: read, seconds: report.elapsed,
                             switched: switched, resumed: resumed, alreadyBuilt: false, pruned: pruned,
                             failures: try full.failureCount())
    }

    /// A finished time-travel target of the same plan, built by this code: nothing to do.
    private func existingResult(_ name: String, plan: RebuildPlan, names: [String], set: ProjectionSet, end: UInt64) throws -> RebuildResult? {
        guard plan.isTimeTravel, store.exists(name) else { return nil }
        let g = try ViewGeneration(name: name, path: store.path(name), projections: set.make(names), readOnly: false)
        guard try g.metaValue("replay/complete") == String(end),
              try g.metaValue("replay/until-time") == plan.untilTime.map(Timestamp.format),
              try g.projections.allSatisfy({ try g.isCurrent($0) }) else { return nil }
        return RebuildResult(generation: name, appliedSeq: try g.appliedSeq(), events: 0, seconds: 0, switched: false,
                             resumed: false, alreadyBuilt: true, pruned: [], failures: try g.failureCount())
    }

    /// Whether the interrupted target's checkpoints were written by this code and configuration
    /// (otherwise it starts over: its partial views belong to another version).
    private func isCurrent(_ name: String, names: [String], set: ProjectionSet) throws -> Bool {
        let g = try ViewGeneration(name: name, path: store.path(name), projections: set.make(names), readOnly: false)
        return try g.projections.allSatisfy { try g.isCurrent($0) }
    }

    static func validate(name: String) throws {
        let ok = !name.isEmpty && name.count <= 64 && !name.hasPrefix(".") && name != "CURRENT" && !name.hasPrefix("REBUILDING")
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        if !ok { throw ViewsError("\(name) is not a valid generation name (letters, digits, - _ .)") }
    }

    /// Copies the live generation `source` (one consistent snapshot) into `name`, then empties
    /// the projections to rebuild: their databases, checkpoints, build tags and failures.
    private func prepareCopy(of source: String, into name: String, rebuilding names: [String], set: ProjectionSet) throws {
        let path = store.path(name)
        if FileManager.default.fileExists(atPath: path + "/data.mdb") {
            let g = try ViewGeneration(name: name, path: path, projections: set.make(), readOnly: false)
            if try g.metaValue("replay/prepared") == "1" { return }
        }
        // Copy beside it, then rename: a kill mid-copy leaves no half environment as the target.
        let tmp = path + ".copy"
        try? FileManager.default.removeItem(atPath: tmp)
        try? FileManager.default.removeItem(atPath: path)
        let live = try ViewGeneration(name: source, path: store.path(source), projections: set.make(), readOnly: false)
        try live.environment.backup(to: tmp, compact: true)
        guard rename(tmp, path) == 0 else { throw ViewsError("cannot rename \(tmp): \(String(cString: strerror(errno)))") }
        let g = try ViewGeneration(name: name, path: path, projections: set.make(), readOnly: false)
        try g.environment.write { tx in
            for p in g.projections where names.contains(p.name) {
                for db in p.databaseNames { try tx.clear(try g.environment.openDatabase(db)) }
                _ = try tx.delete(g.meta, key: Array("checkpoint/\(p.name)".utf8))
                _ = try tx.delete(g.meta, key: Array("build/\(p.name)".utf8))
                var doomed: [[UInt8]] = []
                let prefix = Array(p.name.utf8) + [0]
                try tx.scan(g.failures, from: prefix) { k, _ in
                    let key = Array(k)
                    guard key.starts(with: prefix) else { return false }
                    doomed.append(key)
                    return true
                }
                for k in doomed { _ = try tx.delete(g.failures, key: k) }
            }
            var replayKeys: [[UInt8]] = []
            try tx.scan(g.meta, from: Array("replay/".utf8)) { k, _ in
                let key = Array(k)
                guard key.starts(with: Array("replay/".utf8)) else { return false }
                replayKeys.append(key)
                return true
            }
            for k in replayKeys { _ = try tx.delete(g.meta, key: k) }
            try tx.put(g.meta, key: Array("replay/prepared".utf8), value: Array("1".utf8))
            try tx.put(g.meta, key: Array("replay/copied-from".utf8), value: Array(source.utf8))
        }
    }

    /// Folds events (from, through] into `generation` — only those dated at or before `until`
    /// when given: a reader thread decodes (and filters)
    /// batch k+1 while batch k folds and commits. Returns the number of events read.
    func foldRange(_ generation: ViewGeneration, from: UInt64, through end: UInt64, batchSize: Int,
                   until: Int64?, boundaries: [UInt64]? = nil, shouldStop: () -> Bool,
                   onBatch: (UInt64, [String: Int]) -> Void) throws -> UInt64 {
        try ProjectionRunner(log: log, generation: generation, batchSize: batchSize)
            .fold(from: from, through: end, until: until, boundaries: boundaries, shouldStop: shouldStop) { scanned, report in
                onBatch(scanned, report.perProjection)
            }
    }

    // MARK: Verify

    /// Rebuilds `projections` (nil: all) into a scratch generation up to the live views'
    /// checkpoints — taken from one snapshot of the live generation, so a running server may go
    /// on — and compares digests and, where they differ, the first differing keys.
    public func verify(projections: [String]? = nil, batchSize: Int = 8192,
                       progress: (RebuildProgress) -> Void = { _ in }) throws -> ReplayVerifyReport {
        let lock = try RebuildLock(path: lockFile, directory: store.directory)
        defer { lock.release() }
        guard let live = store.current(), store.exists(live) else { throw ViewsError("no live views in \(store.directory) to verify") }
        let set = try projectionSet()
        let names = set.make(projections).map(\.name)
        if let unknown = projections?.first(where: { !ProjectionSet.names.contains($0) }) {
            throw ViewsError("no projection \(unknown) (have: \(ProjectionSet.names.joined(separator: ", ")))")
        }
        let clock = ContinuousClock.now
        let scratch = store.directory + "/.verify-\(getpid())"
        cleanScratch()
        defer { cleanScratch() }
        let snapshotPath = scratch + "/live", rebuiltPath = scratch + "/rebuilt"
        let source = try ViewGeneration(name: live, path: store.path(live), projections: set.make(), readOnly: false)
        try source.environment.backup(to: snapshotPath, compact: true)
        let snapshot = try ViewGeneration(name: live, path: snapshotPath, projections: set.make(), readOnly: false)
        let rebuiltAll = try ViewGeneration(name: "rebuild", path: rebuiltPath, projections: set.make(), readOnly: false)
        var entries: [ReplayVerifyEntry] = []
        // Projections at the same checkpoint fold together.
        var groups: [UInt64: [String]] = [:]
        for n in names { groups[try snapshot.checkpoint(n), default: []].append(n) }
        var report = RebuildProgress(phase: .folding, generation: "rebuild", startSeq: 0, endSeq: groups.keys.max() ?? 0, seq: 0,
                                     perProjection: [:], elapsed: 0, resumed: false)
        for (checkpoint, group) in groups.sorted(by: { $0.key < $1.key }) {
            let g = try ViewGeneration(name: "rebuild", path: rebuiltPath, projections: set.make(group), readOnly: false)
            report.endSeq = checkpoint
            report.seq = 0
            // The live generation's own batch ends: segments evaluate at batch ends.
            let boundaries = try snapshot.batchEnds(through: checkpoint)
            _ = try foldRange(g, from: 0, through: checkpoint, batchSize: batchSize, until: nil,
                              boundaries: boundaries.isEmpty ? nil : boundaries, shouldStop: { false }) { seq, per in
                report.seq = seq
                for (k, v) in per { report.perProjection[k, default: 0] += v }
                report.elapsed = (ContinuousClock.now - clock).seconds
                progress(report)
            }
        }
        for n in names {
            let p = snapshot.projection(named: n)!
            let a = try snapshot.digest(n), b = try rebuiltAll.digest(n)
            let diff = a == b ? [] : try snapshot.differences(n, from: rebuiltAll)
            entries.append(ReplayVerifyEntry(projection: n, liveDigest: a, rebuiltDigest: b, differences: diff,
                                       liveIsStale: try !snapshot.isCurrent(p), checkpoint: try snapshot.checkpoint(n)))
        }
        return ReplayVerifyReport(live: live, entries: entries)
    }

    private func cleanScratch() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: store.directory)) ?? []
        for n in names where n.hasPrefix(".verify-") { try? FileManager.default.removeItem(atPath: store.directory + "/" + n) }
    }

    /// The interrupted rebuild recorded in `REBUILDING`, if any.
    public func interrupted() -> (generation: String, plan: String)? {
        guard let s = RebuildState.load(stateFile) else { return nil }
        return (s.generation, s.json.jsonBytes().utf8String)
    }
}

/// A rebuild stopped on request between batches (it can be resumed).
public struct RebuildStopped: Error, CustomStringConvertible {
    public var description: String { "rebuild stopped; run it again to continue" }
}

/// The plan of the rebuild in progress, in `<data>/views/REBUILDING`.
struct RebuildState: Equatable {
    var generation: String
    var projections: [String]?
    var untilSeq: UInt64?
    var untilTime: Int64?
    var copiedFrom: String?

    func sameWork(as other: RebuildState) -> Bool {
        projections == other.projections && untilSeq == other.untilSeq && untilTime == other.untilTime
    }

    var json: JSON {
        .object([("generation", .string(generation)),
                 ("projections", projections.map { .array($0.map(JSON.string)) } ?? .null),
                 ("until_seq", untilSeq.map { .int(Int64($0)) } ?? .null),
                 ("until_time", untilTime.map { .string(Timestamp.format($0)) } ?? .null),
                 ("copied_from", copiedFrom.map(JSON.string) ?? .null)])
    }

    func save(_ path: String) throws {
        let tmp = path + ".tmp"
        try Data(json.jsonBytes()).write(to: URL(fileURLWithPath: tmp))
        guard rename(tmp, path) == 0 else { throw ViewsError("cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    static func load(_ path: String) -> RebuildState? {
        guard let bytes = FileManager.default.contents(atPath: path), let j = try? JSON.parse([UInt8](bytes)),
              let g = j["generation"]?.stringValue else { return nil }
        return RebuildState(generation: g, projections: j["projections"]?.arrayValue?.compactMap(\.stringValue),
                            untilSeq: j["until_seq"]?.intValue.map { UInt64($0) },
                            untilTime: j["until_time"]?.stringValue.flatMap(Timestamp.parse),
                            copiedFrom: j["copied_from"]?.stringValue)
    }
}

/// An exclusive `flock` on a file: one rebuild at a time per data directory.
final class RebuildLock {
    private var fd: Int32

    init(path: String, directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ViewsError("cannot open \(path): \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            fd = -1
            throw RebuildBusy()
        }
    }

    func release() {
        if fd >= 0 { flock(fd, LOCK_UN); close(fd); fd = -1 }
    }

    deinit { release() }
}

/// Another rebuild holds the data directory.
public struct RebuildBusy: Error, CustomStringConvertible {
    public var description: String { "another rebuild is running on this data directory" }
}

// MARK: An in-process job (the server's POST /v1/admin/replay)

/// The state of the server's replay job, as `GET /v1/admin/replay` reports it.
public struct ReplayJobStatus: Sendable {
    public enum State: String, Sendable { case idle, running, succeeded, failed }
    public var state: State = .idle
    public var id = 0
    public var plan: RebuildPlan?
    public var progress: RebuildProgress?
    public var result: RebuildResult?
    public var started: Int64?
    public var finished: Int64?
    public var error: String?

    public var json: JSON {
        var o: [(String, JSON)] = [("state", .string(state.rawValue))]
        guard state != .idle else { return .object(o) }
        o.append(("id", .int(Int64(id))))
        if let plan {
            o.append(("projections", .array((plan.projections ?? ProjectionSet.names).map(JSON.string))))
            o.append(("until_seq", plan.untilSeq.map { .int(Int64($0)) } ?? .null))
            o.append(("until", plan.untilTime.map { .string(Timestamp.format($0)) } ?? .null))
        }
        o.append(("generation", (result?.generation ?? progress?.generation).map(JSON.string) ?? .null))
        o.append(("phase", progress.map { .string($0.phase.rawValue) } ?? .null))
        let done = progress?.eventsDone ?? 0, total = progress?.eventsTotal ?? 0
        o.append(("events_done", .int(Int64(done))))
        o.append(("events_total", .int(Int64(total))))
        o.append(("events_per_second", .double(((progress?.eventsPerSecond ?? 0) * 10).rounded() / 10)))
        o.append(("eta_seconds", progress?.eta.map { .double(($0 * 10).rounded() / 10) } ?? .null))
        var per: [(String, JSON)] = []
        for (k, v) in (progress?.perProjection ?? [:]).sorted(by: { $0.key < $1.key }) { per.append((k, .int(Int64(v)))) }
        o.append(("per_projection", .object(per)))
        o.append(("resumed", .bool(progress?.resumed ?? false)))
        o.append(("switched", .bool(result?.switched ?? false)))
        o.append(("applied_seq", result.map { .int(Int64($0.appliedSeq)) } ?? .null))
        o.append(("started", started.map { .string(Timestamp.format($0)) } ?? .null))
        o.append(("finished", finished.map { .string(Timestamp.format($0)) } ?? .null))
        o.append(("error", error.map(JSON.string) ?? .null))
        return .object(o)
    }
}

/// One replay job at a time, run on a thread of its own beside the live fold.
public final class ReplayJob: @unchecked Sendable {
    private let lock = NSLock()
    private var current = ReplayJobStatus()
    private var stopRequested = false
    private var heldLock: RebuildLock?

    public init() {}

    public var status: ReplayJobStatus { lock.withLock { current } }

    /// Asks a running job to stop between batches (it can be resumed by starting it again).
    public func stop() { lock.withLock { stopRequested = true } }

    /// Starts `plan` on `views`' data; throws `RebuildBusy` when a job runs.
    @discardableResult
    public func start(_ plan: RebuildPlan, views: LiveViews) throws -> ReplayJobStatus {
        let rebuilder = Rebuilder(dataDirectory: String(views.store.directory.dropLast("/views".count)), log: views.log, set: views.set)
        let started: ReplayJobStatus = try lock.withLock {
            if current.state == .running { throw RebuildBusy() }
            // Taken here so a rebuild running elsewhere (touchstone-replay) answers 409 at once.
            let held = try rebuilder.lock()
            heldLock = held
            current = ReplayJobStatus(state: .running, id: current.id + 1, plan: plan, progress: nil, result: nil,
                                      started: nowMicros(), finished: nil, error: nil)
            stopRequested = false
            return current
        }
        let thread = Thread { [self] in
            do {
                guard let held = lock.withLock({ () -> RebuildLock? in defer { heldLock = nil }; return heldLock }) else { return }
                let result = try rebuilder.run(plan, lock: held, progress: { p in self.lock.withLock { self.current.progress = p } },
                                               shouldStop: { self.lock.withLock { self.stopRequested } },
                                               switcher: { name in try views.adopt(name) })
                lock.withLock {
                    current.result = result
                    current.state = .succeeded
                    current.finished = nowMicros()
                }
            } catch {
                lock.withLock {
                    current.error = "\(error)"
                    current.state = .failed
                    current.finished = nowMicros()
                }
            }
        }
        thread.stackSize = 4 << 20
        thread.start()
        return started
    }

}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension Array where Element == UInt8 {
    var utf8String: String { String(decoding: self, as: UTF8.self) }
}
