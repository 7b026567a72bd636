import EventLog
import Foundation
import JSONCore
import Testing

let root: String = {
    var url = URL(fileURLWithPath: #filePath)
    while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { url.deleteLastPathComponent() }
    return url.path
}()

func datagen(_ args: [String]) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: root + "/.build/debug/touchstone-datagen")
    p.arguments = args
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    return p.terminationStatus
}

@Suite(.serialized) struct DataGen {
    let dir = NSTemporaryDirectory() + "touchstone-datagen-" + UUID().uuidString

    @Test func sameFlagsGiveTheSameBytes() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try datagen(["--customers", "50", "--seed", "3", "--out", dir + "/a.ndjson"]) == 0)
        #expect(try datagen(["--customers", "50", "--seed", "3", "--out", dir + "/b.ndjson"]) == 0)
        #expect(try datagen(["--customers", "50", "--seed", "4", "--out", dir + "/c.ndjson"]) == 0)
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/a.ndjson"))
        #expect(a == (try Data(contentsOf: URL(fileURLWithPath: dir + "/b.ndjson"))))
        #expect(a != (try Data(contentsOf: URL(fileURLWithPath: dir + "/c.ndjson"))))
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/a.ndjson.truth.json")) == Data(contentsOf: URL(fileURLWithPath: dir + "/b.ndjson.truth.json")))
    }

    @Test func importingTheDataMatchesItsTruth() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try datagen(["--customers", "120", "--seed", "9", "--out", dir + "/d.ndjson"]) == 0)
        let truth = try JSON.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/d.ndjson.truth.json"))))
        let log = try EventLog(directory: dir + "/log")
        let builder = EnvelopeBuilder(schemas: try SchemaSet.load(builtIn: root + "/Schemas/events", dataDirectory: nil))
        let s = try Importer(log: log, builder: builder, source: SourceContext(name: "import", channel: "server")).run(try LineReader(path: dir + "/d.ndjson"))
        #expect(Int64(s.appended) == truth["valid_events"]?.intValue)
        #expect(Int64(s.duplicates) == truth["duplicates"]?.intValue)
        let malformed = truth["malformed"]?.objectValue?.reduce(0) { $0 + ($1.1.intValue ?? 0) } ?? -1
        #expect(Int64(s.rejected) == malformed)
        #expect(Int64(s.lines) == truth["lines"]?.intValue)

        // Orders and revenue recomputed from the stored events equal the truth.
        var orders = 0, cents = 0, byDay: [String: Int] = [:]
        try log.forEach { e in
            if e.event == "Order Completed", let total = e.view["properties"]?["total"]?.doubleValue {
                orders += 1
                let c = Int((total * 100).rounded())
                cents += c
                byDay[Timestamp.formatDay(Timestamp.day(e.timestamp)), default: 0] += c
            }
            return true
        }
        #expect(Int64(orders) == truth["orders"]?.intValue)
        #expect(cents == Int(((truth["revenue"]?.doubleValue ?? 0) * 100).rounded()))
        let truthDays = truth["revenue_by_day"]?.objectValue ?? []
        #expect(truthDays.count == byDay.count)
        for (day, v) in truthDays { #expect(byDay[day] == Int(((v.doubleValue ?? 0) * 100).rounded()), "\(day)") }
        // The per-customer truth adds up to the totals.
        let per = truth["per_customer"]?.arrayValue ?? []
        #expect(Int64(per.count) == truth["customers"]?.intValue)
        #expect(per.reduce(0) { $0 + Int($1["orders"]?.intValue ?? 0) } == orders)
    }

    @Test func badFlagsAreNamed() throws {
        #expect(try datagen(["--customers", "-3"]) == 2)
        #expect(try datagen(["--frobnicate"]) == 2)
    }
}
