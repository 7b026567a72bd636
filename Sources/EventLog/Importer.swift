import Dispatch
import Foundation
import JSONCore

/// Running totals of an import.
public struct ImportSummary: Sendable {
    public var lines = 0
    public var appended = 0
    public var duplicates = 0
    public var rejected = 0
    /// Rejections by code, and a few example reasons per code.
    public var rejectedByCode: [String: Int] = [:]
    public var examples: [String: [String]] = [:]
    public init() {}
    public var lastSeq: UInt64 = 0
    public var inputBytes = 0
    public var seconds = 0.0
    public var eventsPerSecond: Double { seconds > 0 ? Double(lines) / seconds : 0 }
}

/// Bulk import of NDJSON into the log: lines are parsed, validated and encoded on all cores
/// while the previous chunk commits, then appended in input order — so seqs follow the
/// file's order and a re-import of the same file appends nothing (every line a duplicate).
/// A bad line never aborts an import: it goes to the dead letters with its reason.
public final class Importer {
    public let log: EventLog
    public let builder: EnvelopeBuilder
    public let source: SourceContext
    /// Most events per commit. Each commit rewrites the pages of the messageId index it
    /// touches (random inserts, so nearly all of them): fewer, larger commits write less.
    /// 32,768 wrote half the bytes of 8,192 and imported 10 % faster.
    public var commitEvents = 32_768
    /// Lines a preparer takes at a time.
    public var chunkLines = 1_024
    public var workers = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Imports keep each message's own `timestamp`: history is not corrected for clock skew
    /// (see `EnvelopeBuilder.correctClockSkew`).
    public init(log: EventLog, builder: EnvelopeBuilder, source: SourceContext) {
        self.log = log
        var historical = builder
        historical.correctClockSkew = false
        self.builder = historical
        self.source = source
    }

    private struct Prepared: @unchecked Sendable {
        var events: [PreparedEvent] = []
        var dead: [DeadLetter] = []
        var lines = 0
        var bytes = 0
    }

    /// Chunks prepared out of order, handed to the writer in order. `capacity` bounds how
    /// many chunks are in flight, so memory stays flat whatever the input's size.
    private final class Pipeline: @unchecked Sendable {
        let lock = NSCondition()
        var ready: [Int: Prepared] = [:]
        var totalChunks: Int?
        var inFlight = 0
        let capacity: Int
        init(capacity: Int) { self.capacity = capacity }

        func acquireSlot() {
            lock.lock()
            while inFlight >= capacity { lock.wait() }
            inFlight += 1
            lock.unlock()
        }

        func deliver(_ index: Int, _ p: Prepared) {
            lock.lock()
            ready[index] = p
            lock.broadcast()
            lock.unlock()
        }

        func finish(chunks: Int) {
            lock.lock()
            totalChunks = chunks
            lock.broadcast()
            lock.unlock()
        }

        /// Waits for chunk `next`, then takes it and every consecutive chunk already ready
        /// (up to `maxEvents`), so one commit carries as much as is waiting. Nil at the end.
        func take(from next: Int, maxEvents: Int) -> (Prepared, Int)? {
            lock.lock()
            defer { lock.unlock() }
            while ready[next] == nil {
                if let total = totalChunks, next >= total { return nil }
                lock.wait()
            }
            var merged = Prepared()
            var i = next
            while let p = ready[i], i == next || merged.events.count + p.events.count <= maxEvents {
                ready[i] = nil
                merged.events.append(contentsOf: p.events)
                merged.dead.append(contentsOf: p.dead)
                merged.lines += p.lines
                merged.bytes += p.bytes
                i += 1
            }
            inFlight -= i - next
            lock.broadcast()
            return (merged, i)
        }
    }

    /// Chunks of lines waiting for a preparer, in the order read; `take` waits, nil once
    /// closed and empty. Unbounded here: the pipeline's slots bound what is in flight.
    private final class JobQueue: @unchecked Sendable {
        typealias Job = (Int, [ArraySlice<UInt8>], [Bool])
        private let lock = NSCondition()
        private var items: [Job] = []
        private var head = 0
        private var closed = false

        func put(_ job: Job) {
            lock.lock()
            items.append(job)
            lock.signal()
            lock.unlock()
        }

        func close() {
            lock.lock()
            closed = true
            lock.broadcast()
            lock.unlock()
        }

        func take() -> Job? {
            lock.lock()
            defer { lock.unlock() }
            while head == items.count {
                if closed { return nil }
                lock.wait()
            }
            let job = items[head]
            head += 1
            if head == items.count { items.removeAll(keepingCapacity: true); head = 0 }
            return job
        }
    }

    /// Imports every line of `reader`. `onCommit` runs after each durable commit with the
    /// totals so far (for progress output and commit reports).
    @discardableResult
    public func run(_ reader: LineReader, summary initial: ImportSummary = .init(),
                    onCommit: (ImportSummary) -> Void = { _ in }) throws -> ImportSummary {
        var summary = initial
        let started = ContinuousClock.now
        // Two commits' worth of chunks in flight, so the preparers fill the next commit while
        // the writer writes and syncs this one (one commit's worth left a core idle).
        let chunkLines = max(16, self.chunkLines)
        let commitEvents = max(1, self.commitEvents)
        let pipeline = Pipeline(capacity: max(2 * workers, 2 * commitEvents / chunkLines))
        let builder = self.builder, source = self.source, log = self.log

        let jobs = JobQueue()
        // The reader: this thread reads chunks in order and hands each to a preparer.
        let readerDone = DispatchSemaphore(value: 0)
        final class ReadError: @unchecked Sendable { var error: Error? }
        let readError = ReadError()
        let readerThread = Thread {
            var index = 0
            do {
                while true {
                    var lines: [ArraySlice<UInt8>] = []
                    var cut: [Bool] = []
                    lines.reserveCapacity(chunkLines)
                    while lines.count < chunkLines, let line = try reader.next() {
                        lines.append(line.bytes)
                        cut.append(line.truncated)
                    }
                    if lines.isEmpty { break }
                    pipeline.acquireSlot()
                    jobs.put((index, lines, cut))
                    index += 1
                }
            } catch {
                readError.error = error
            }
            pipeline.finish(chunks: index)
            jobs.close()
            readerDone.signal()
        }
        readerThread.stackSize = 1 << 20
        readerThread.start()

        // The preparers: threads of their own, one per core. (Blocks on the global dispatch
        // queue shared its threads with this writer, which blocks in fsync and in `take`:
        // on two cores that left one thread preparing.)
        for n in 0..<max(1, workers) {
            let preparer = Thread {
                while let (chunk, batch, truncated) = jobs.take() {
                    pipeline.deliver(chunk, Importer.prepare(batch, truncated: truncated, builder: builder, source: source, log: log))
                }
            }
            preparer.name = "import-prepare-\(n)"
            preparer.stackSize = 1 << 20
            preparer.start()
        }

        // The writer: this thread commits chunks in input order, merging those already waiting.
        var next = 0
        var writeError: Error?
        while let (batch, after) = pipeline.take(from: next, maxEvents: commitEvents) {
            next = after
            do {
                let outcomes = try log.append(batch.events, deadLetters: batch.dead)
                account(batch, outcomes)
                // Freeing a commit's thousands of buffers is work too: the preparers' threads
                // do it, and the single writer goes on to the next commit.
                DispatchQueue.global().async { withExtendedLifetime(batch) {} }
            } catch {
                writeError = error
                break
            }
        }
        if let writeError {
            // Let the reader run dry so its thread ends, then report.
            while pipeline.take(from: next, maxEvents: .max).map({ next = $0.1 }) != nil {}
            readerDone.wait()
            throw writeError
        }
        readerDone.wait()
        if let error = readError.error { throw error }
        return summary

        func account(_ p: Prepared, _ outcomes: [AppendOutcome]) {
            summary.lines += p.lines
            summary.inputBytes += p.bytes
            for o in outcomes {
                switch o {
                case .appended(let s): summary.appended += 1; summary.lastSeq = max(summary.lastSeq, s)
                case .duplicate: summary.duplicates += 1
                }
            }
            for d in p.dead {
                summary.rejected += 1
                summary.rejectedByCode[d.code, default: 0] += 1
                if summary.examples[d.code, default: []].count < 3 { summary.examples[d.code, default: []].append(d.reason) }
            }
            let elapsed = ContinuousClock.now - started
            summary.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            onCommit(summary)
        }
    }

    /// Parses, validates, encodes and compresses one chunk of lines (on a worker thread).
    private static func prepare(_ lines: [ArraySlice<UInt8>], truncated: [Bool], builder: EnvelopeBuilder,
                                source: SourceContext, log: EventLog) -> Prepared {
        var p = Prepared()
        let received = nowMicros()
        let suppression = try? log.suppressionSnapshot()
        for (n, line) in lines.enumerated() {
            p.bytes += line.count + 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }  // blank lines are not messages
            p.lines += 1
            var result: Result<PreparedEvent, Rejection>
            if truncated[n] {
                result = .failure(Rejection(code: "too_large", message: "line longer than the reader's limit"))
            } else {
                result = line.withUnsafeBufferPointer { builder.prepare(bytes: $0, source: source, receivedAt: received) }
            }
            if case .success(let e) = result, let list = suppression, let id = list.suppressed(JSONView(bytes: e.payload)) {
                result = .failure(Rejection(code: "suppressed", message: "\(id.type) belongs to an erased customer"))
            }
            switch result {
            case .success(let e): p.events.append(e)
            case .failure(let r): p.dead.append(DeadLetter(rejection: r, raw: Array(line), source: source.name, time: received))
            }
        }
        // Compress here; if it fails the writer compresses them (and reports any error).
        try? log.seal(&p.events)
        return p
    }
}
