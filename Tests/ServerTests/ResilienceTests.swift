import EventLog
import Foundation
import Hummingbird
import JSONCore
import Testing

/// Acknowledged and attempted messageIds of a load run.
actor Ledger {
    private(set) var acknowledged: [String] = []
    private(set) var unacknowledged: [[String]] = []
    func ack(_ ids: [String]) { acknowledged += ids }
    func lost(_ ids: [String]) { unacknowledged.append(ids) }
    var count: Int { acknowledged.count }
}

/// `workers` keep-alive clients, each sending up to `requests` requests of `batch` messages
/// (a single `track` call when `batch` is 1); a worker stops at its first failure.
func load(port: Int, key: String, workers: Int, requests: Int, batch: Int, tag: String, ledger: Ledger) async {
    await withTaskGroup(of: Void.self) { group in
        for w in 0..<workers {
            group.addTask {
                let c = Connection(port: port, timeout: .seconds(20))
                for n in 0..<requests {
                    let ids = (0..<batch).map { "\(tag)-w\(w)-r\(n)-m\($0)" }
                    let path: String, body: JSON
                    if batch == 1 {
                        path = "/v1/track"
                        body = message("track", ["event": "Load Test", "properties": ["n": .int(Int64(n))]], messageId: ids[0])
                    } else {
                        path = "/v1/batch"
                        body = ["batch": .array(ids.map { message("track", ["event": "Load Test"], messageId: $0) })]
                    }
                    let reply = try? await c.send(.post, path, headers: HTTP.basic(key), body: body.jsonBytes())
                    guard let reply, reply.status == 200 else {
                        await ledger.lost(ids)
                        break
                    }
                    await ledger.ack(ids)
                }
                await c.close()
            }
        }
    }
}

func waitUntil(_ timeout: Duration = .seconds(30), _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !(await condition()) {
        if ContinuousClock.now > deadline { throw ServerFailure(message: "condition not met within \(timeout)") }
        try await Task.sleep(for: .milliseconds(5))
    }
}

@Suite(.serialized)
struct ResilienceTests {
    @Test func concurrentClientsAreEachAcknowledgedAndStoredOnce() async throws {
        let scratch = Scratch("concurrent")
        defer { scratch.remove() }
        let key = try createKey(data: scratch.path, ["--source", "web", "--channel", "web"])
        let server = try await ServerProcess(data: scratch.path)
        let singles = Ledger(), batches = Ledger()
        async let a: Void = load(port: server.port, key: key, workers: 8, requests: 40, batch: 1, tag: "single", ledger: singles)
        async let b: Void = load(port: server.port, key: key, workers: 4, requests: 10, batch: 50, tag: "batch", ledger: batches)
        _ = await (a, b)
        let single = await singles.count, batched = await batches.count
        #expect(single == 320)
        #expect(batched == 2000)
        #expect(try await server.stop() == 0)
        let counts = try messageIdCounts(data: scratch.path)
        #expect(counts.count == 2320)
        #expect(counts.values.allSatisfy { $0 == 1 })
        let events = try storedEvents(data: scratch.path)
        #expect(events.map(\.seq) == Array(1...UInt64(events.count)), "seqs are dense")
    }

    @Test func sigtermMidLoadKeepsEveryAcknowledgedEvent() async throws {
        let scratch = Scratch("sigterm")
        defer { scratch.remove() }
        let key = try createKey(data: scratch.path, ["--source", "web", "--channel", "web"])
        let server = try await ServerProcess(data: scratch.path)
        let ledger = Ledger()
        let loadTask = Task { await load(port: server.port, key: key, workers: 6, requests: 100_000, batch: 20, tag: "term", ledger: ledger) }
        try await waitUntil { await ledger.count >= 3000 }
        let status = try await server.stop(signal: SIGTERM)
        await loadTask.value
        #expect(status == 0, "graceful shutdown exits 0: \(server.log.suffix(2000))")
        #expect(server.log.contains("event log synced; shutting down"))
        let acknowledged = await ledger.acknowledged
        let counts = try messageIdCounts(data: scratch.path)
        let missing = acknowledged.filter { counts[$0] != 1 }
        #expect(missing.isEmpty, "\(missing.count) acknowledged events are not in the log exactly once")
    }

    @Test func killNineUnderLoadLosesNoAcknowledgedEventAndRetriesStayExactlyOnce() async throws {
        let scratch = Scratch("kill9")
        defer { scratch.remove() }
        let key = try createKey(data: scratch.path, ["--source", "web", "--channel", "web"])
        let server = try await ServerProcess(data: scratch.path)
        let ledger = Ledger()
        let loadTask = Task { await load(port: server.port, key: key, workers: 6, requests: 100_000, batch: 20, tag: "kill", ledger: ledger) }
        try await waitUntil { await ledger.count >= 3000 }
        try await server.stop(signal: SIGKILL)
        await loadTask.value

        // Restart on the same data; clients retry what they never saw acknowledged.
        let restarted = try await ServerProcess(data: scratch.path)
        let retries = await ledger.unacknowledged
        let c = Connection(port: restarted.port)
        for ids in retries {
            let body: JSON = ["batch": .array(ids.map { message("track", ["event": "Load Test"], messageId: $0) })]
            let r = try await c.send(.post, "/v1/batch", headers: HTTP.basic(key), body: body.jsonBytes())
            #expect(r.status == 200)
        }
        await c.close()
        #expect(try await restarted.stop() == 0)

        let acknowledged = await ledger.acknowledged
        let counts = try messageIdCounts(data: scratch.path)
        #expect(acknowledged.allSatisfy { counts[$0] == 1 }, "every acknowledged messageId is in the log exactly once")
        let retried: [String] = retries.flatMap { $0 }
        #expect(retried.allSatisfy { counts[$0] == 1 }, "a retried batch is stored once, whether or not it was committed before the kill")
        #expect(counts.values.allSatisfy { $0 == 1 })
        let verify = try touchstone(["verify", "--data", scratch.path])
        #expect(verify.status == 0, "\(verify.output)")
    }
}
