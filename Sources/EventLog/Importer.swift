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
    /// Lines per commit.
    public var chunkLines = 4096
    public var workers = max(1, ProcessInfo.processInfo.activeProcessorCount)

    public init(log: EventLog, builder: EnvelopeBuilder, source: SourceContext) {
        self.log = log
        self.builder = builder
        self.source = source
    }

    /// Hand-off between the reading thread and the writer queue; the dispatch group orders
    /// every access (the writer sets it before `leave`, the reader reads it after `wait`).
    private final class WriterState: @unchecked Sendable {
        var pending: (Prepared, [AppendOutcome])?
        var error: Error?
    }

    /// Each worker writes only its own slot.
    private struct SendableBuffer<T>: @unchecked Sendable {
        let buffer: UnsafeMutableBufferPointer<T>
        init(_ b: UnsafeMutableBufferPointer<T>) { buffer = b }
    }

    private struct Prepared: @unchecked Sendable {
        var events: [PreparedEvent] = []
        var dead: [DeadLetter] = []
        var lines = 0
        var bytes = 0
    }

    /// Imports every line of `reader`. `onCommit` runs after each durable commit with the
    /// totals so far (for progress output and commit reports).
    @discardableResult
    public func run(_ reader: LineReader, summary initial: ImportSummary = .init(),
                    onCommit: (ImportSummary) -> Void = { _ in }) throws -> ImportSummary {
        var summary = initial
        let started = ContinuousClock.now
        let writerQueue = DispatchQueue(label: "touchstone.import-writer")
        let group = DispatchGroup()
        let shared = WriterState()

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

        while true {
            // Read the next chunk for each worker.
            var chunks: [[ArraySlice<UInt8>]] = []
            var truncated: Set<Int> = []
            var lineNo = 0
            for _ in 0..<workers {
                var lines: [ArraySlice<UInt8>] = []
                lines.reserveCapacity(chunkLines / workers + 1)
                while lines.count < chunkLines / workers, let line = try reader.next() {
                    if line.truncated { truncated.insert(lineNo) }
                    lines.append(line.bytes)
                    lineNo += 1
                }
                if lines.isEmpty { break }
                chunks.append(lines)
            }
            if chunks.isEmpty { break }
            // Prepare the chunks in parallel while the previous one is being committed.
            let prepared = SendableBuffer(UnsafeMutableBufferPointer<Prepared>.allocate(capacity: chunks.count))
            prepared.buffer.initialize(repeating: Prepared())
            let builder = self.builder, source = self.source, log = self.log
            let base = chunks.map(\.count)
            let readChunks = chunks, cut = truncated
            DispatchQueue.concurrentPerform(iterations: readChunks.count) { w in
                var p = Prepared()
                let received = nowMicros()
                let offset = base[..<w].reduce(0, +)
                for (n, line) in readChunks[w].enumerated() {
                    p.bytes += line.count + 1
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }  // blank lines are not messages
                    p.lines += 1
                    let result: Result<PreparedEvent, Rejection>
                    if cut.contains(offset + n) {
                        result = .failure(Rejection(code: "too_large", message: "line longer than the reader's limit"))
                    } else {
                        result = line.withUnsafeBufferPointer { builder.prepare(bytes: $0, source: source, receivedAt: received) }
                    }
                    switch result {
                    case .success(let e): p.events.append(e)
                    case .failure(let r): p.dead.append(DeadLetter(rejection: r, raw: Array(line), source: source.name, time: received))
                    }
                }
                do {
                    try log.seal(&p.events)
                } catch {
                    // Leave them unsealed: the writer compresses them (and reports any error).
                }
                prepared.buffer[w] = p
            }
            var merged = Prepared()
            for p in prepared.buffer {
                merged.events.append(contentsOf: p.events)
                merged.dead.append(contentsOf: p.dead)
                merged.lines += p.lines
                merged.bytes += p.bytes
            }
            prepared.buffer.deinitialize()
            prepared.buffer.deallocate()
            // Wait for the previous commit, account for it, then start this one.
            group.wait()
            if let error = shared.error { throw error }
            if let (p, o) = shared.pending { account(p, o); shared.pending = nil }
            group.enter()
            let batch = merged
            writerQueue.async {
                do {
                    let outcomes = try log.append(batch.events, deadLetters: batch.dead)
                    shared.pending = (batch, outcomes)
                } catch {
                    shared.error = error
                }
                group.leave()
            }
        }
        group.wait()
        if let error = shared.error { throw error }
        if let (p, o) = shared.pending { account(p, o) }
        return summary
    }
}
