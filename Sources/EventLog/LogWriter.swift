import Foundation
import JSONCore

/// The writer's private state: its compression context, the dictionary in use, and the
/// samples and running ratio that decide when to train a new dictionary. Used only under
/// the log's writer lock.
final class LogWriter {
    let options: LogOptions
    let compressor: Compressor
    var current: ZstdDictionary?
    private var samples: [[UInt8]] = []
    private var seen = 0
    private var ratioAtTraining = 0.0
    /// Payload and record bytes of the recent window (the last `trainAfter` events or so).
    private var windowInput = 0, windowRecord = 0, windowEvents = 0
    private var recentRatio = 0.0

    init(options: LogOptions) {
        self.options = options
        compressor = Compressor(level: options.compressionLevel)
    }

    /// A dictionary being trained off the writer's thread (`LogOptions.trainInBackground`):
    /// nil when none is; its outcome once it is done (nil bytes: training failed).
    private var training: TrainingSlot?

    /// Where a background training leaves its dictionary's bytes (nil: training failed).
    final class TrainingSlot: @unchecked Sendable {
        private let condition = NSCondition()
        private var result: [UInt8]??  // nil while running

        /// The outcome, if training is done.
        var outcome: [UInt8]?? { condition.withLock { result } }

        func finish(_ bytes: [UInt8]?) {
            condition.withLock { result = .some(bytes); condition.broadcast() }
        }

        /// Waits for the outcome.
        func wait() -> [UInt8]? {
            condition.lock()
            defer { condition.unlock() }
            while result == nil { condition.wait() }
            return result!
        }
    }

    /// Collects samples and trains a dictionary: the first once `trainAfter` events were
    /// seen, a new one when the ratio drifts below `retrainBelow` of what it was. Old records
    /// keep their dictionary id, so nothing is rewritten.
    ///
    /// Training a 64 KiB dictionary from 4,000–8,000 samples takes a quarter to half a second.
    /// In the writer that is a stall of every acknowledgement; with `trainInBackground` it runs
    /// on a thread of its own, the writer goes on with the dictionary it has, and the new one
    /// is stored and used from the first commit after it is ready.
    func maybeTrain(_ items: [PreparedEvent], log: EventLog) throws {
        guard !items.isEmpty else { return }
        if let t = training {
            guard let bytes = t.outcome else { return collect(items) }
            training = nil
            if let bytes { try install(bytes, log: log) }
        }
        collect(items)
        let drifted = current != nil && recentRatio > 0 && recentRatio < options.retrainBelow * ratioAtTraining
        guard (current == nil && samples.count >= options.trainAfter) || drifted else { return }
        if options.trainInBackground {
            let slot = TrainingSlot()
            training = slot
            let samples = self.samples, capacity = options.dictionaryCapacity
            let thread = Thread { slot.finish(try? ZstdDictionary.train(samples: samples, capacity: capacity)) }
            thread.start()
            // The drift check starts again from the dictionary that comes out of it.
            recentRatio = 0
            return
        }
        guard let bytes = try? ZstdDictionary.train(samples: samples, capacity: options.dictionaryCapacity) else {
            return  // too few or too uniform samples: try again later, records stay readable either way
        }
        try install(bytes, log: log)
    }

    private func collect(_ items: [PreparedEvent]) {
        let keep = 2 * options.trainAfter
        let stride = current == nil ? 1 : 8
        for n in items.indices {
            seen += 1
            if seen % stride == 0 {
                if samples.count < keep { samples.append(items[n].payload) } else { samples[seen / stride % keep] = items[n].payload }
            }
        }
    }

    private func install(_ bytes: [UInt8], log: EventLog) throws {
        let id = (log.dictionaries.latest?.id ?? 0) + 1
        let dict = try ZstdDictionary(id: id, bytes: bytes, level: options.compressionLevel)
        try log.storeDictionary(dict)
        current = dict
        // The first full window after training sets the baseline the drift check compares with.
        ratioAtTraining = 0
        windowInput = 0
        windowRecord = 0
        windowEvents = 0
        recentRatio = 0
    }

    /// Waits for a dictionary being trained in the background and stores it (for tests and
    /// tools that want the dictionary in use now). Call under the writer lock.
    func finishTraining(log: EventLog) throws {
        guard let t = training else { return }
        training = nil
        if let bytes = t.wait() { try install(bytes, log: log) }
    }

    /// Records what a commit's payloads compressed to; once per window, the window's ratio
    /// becomes the one `maybeTrain` compares with the ratio at training.
    func observe(events: Int, payloadBytes: Int, recordBytes: Int) {
        guard current != nil else { return }
        windowInput += payloadBytes
        windowRecord += recordBytes
        windowEvents += events
        if windowEvents >= options.trainAfter {
            recentRatio = Double(windowInput) / Double(max(windowRecord, 1))
            if ratioAtTraining == 0 { ratioAtTraining = recentRatio }
            windowInput = 0
            windowRecord = 0
            windowEvents = 0
        }
    }
}

/// A dead letter's stored form: version, time, source, code, reason, and the raw bytes —
/// version 2 keeps them as a zstd frame (rejected bodies are mostly large and repetitive:
/// oversized messages, whole malformed requests), version 1 (still read) as they came.
enum DeadLetterCodec {
    /// Raw inputs shorter than this are stored as they are: a frame would not pay.
    static let compressFrom = 256

    static func encode(_ d: DeadLetter) -> [UInt8] {
        let packed = d.raw.count >= compressFrom ? (try? Zstd.compress(d.raw)).flatMap { $0.count < d.raw.count ? $0 : nil } : nil
        var out: [UInt8] = [packed == nil ? 1 : 2]
        Varint.writeSigned(d.time, to: &out)
        for s in [d.source, d.code, d.reason] {
            Varint.write(UInt64(s.utf8.count), to: &out)
            out.append(contentsOf: s.utf8)
        }
        let raw = packed ?? d.raw
        Varint.write(UInt64(raw.count), to: &out)
        out.append(contentsOf: raw)
        return out
    }

    static func decode(_ v: UnsafeRawBufferPointer) throws -> DeadLetter {
        try v.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            let version = try r.byte()
            guard version == 1 || version == 2 else { throw CorruptRecord(reason: "unknown dead-letter version \(version)") }
            let time = try r.signedVarint()
            let source = try r.string(), code = try r.string(), reason = try r.string()
            let n = Int(try r.varint())
            let stored = Array(try r.bytes(n))
            let raw = version == 2 ? try Zstd.decompress(stored) : stored
            return DeadLetter(time: time, source: source, code: code, reason: reason, raw: raw)
        }
    }
}

/// Wakes waiters when the log's last seq reaches what they wait for.
final class CommitNotifier: @unchecked Sendable {
    private let lock = NSLock()
    private var committed: UInt64 = 0
    private var waiters: [UInt64: (UInt64, CheckedContinuation<Void, Never>)] = [:]
    private var nextID: UInt64 = 0

    /// Recent commits of this process, ascending: (last seq of the commit, when it became
    /// durable). Bounded: the oldest are dropped.
    private var commits: [(seq: UInt64, at: Micros)] = []
    private static let keptCommits = 4096

    func publish(_ seq: UInt64) {
        let now = nowMicros()
        lock.lock()
        if seq > committed {
            commits.append((seq, now))
            if commits.count >= 2 * Self.keptCommits { commits.removeFirst(commits.count - Self.keptCommits) }
        }
        committed = max(committed, seq)
        let ready = waiters.filter { $0.value.0 <= committed }
        for id in ready.keys { waiters.removeValue(forKey: id) }
        lock.unlock()
        for (_, w) in ready { w.1.resume() }
        blocked.lock()
        blocked.broadcast()
        blocked.unlock()
    }

    /// Threads waiting in `waitBlocking` (woken on every publish).
    private let blocked = NSCondition()

    /// Blocks the calling thread until `seq` is committed or `timeout` passes; returns whether
    /// it is committed. For a thread of its own (the views' tail), not for the concurrency pool.
    func waitBlocking(for seq: UInt64, timeout: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        blocked.lock()
        defer { blocked.unlock() }
        // `publish` raises `committed` before it takes `blocked`: checked under `blocked`, a
        // commit is either seen here or wakes the wait.
        while lock.withLock({ committed }) < seq {
            if !blocked.wait(until: deadline) { return lock.withLock { committed } >= seq }
        }
        return true
    }

    /// When each of `seqs` (ascending) became durable in this process, nil where unknown
    /// (committed by another process, or long ago).
    func commitMicros(_ seqs: [UInt64]) -> [Micros?] {
        lock.withLock {
            guard let first = seqs.first else { return [] }
            var lo = 0, hi = commits.count  // the first commit holding `first`
            while lo < hi {
                let mid = (lo + hi) / 2
                if commits[mid].seq >= first { hi = mid } else { lo = mid + 1 }
            }
            var i = lo
            return seqs.map { seq in
                while i < commits.count && commits[i].seq < seq { i += 1 }
                return i < commits.count ? commits[i].at : nil
            }
        }
    }

    private func expire(_ id: UInt64) {
        lock.lock()
        let w = waiters.removeValue(forKey: id)
        lock.unlock()
        w?.1.resume()
    }

    /// Returns when `seq` is committed or after `timeout`, whichever is first.
    func wait(for seq: UInt64, timeout: Duration) async {
        let id: UInt64 = lock.withLock { nextID += 1; return nextID }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            lock.lock()
            if committed >= seq {
                lock.unlock()
                c.resume()
                return
            }
            waiters[id] = (seq, c)
            lock.unlock()
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id)
            }
        }
    }
}
