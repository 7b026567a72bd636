import EventLog
import Foundation
import JSONCore
import Testing

/// Runs the real `touchstone` binary.
func touchstoneBinary() -> String { repoRoot + "/.build/debug/touchstone" }

@Suite(.serialized) struct Crashes {
    @Test func killDashNineMidImportLosesNoCommittedBatch() async throws {
        let dir = TempDir()
        let file = dir.path + "/events.ndjson"
        var text = ""
        for i in 0..<60_000 { text += track("k\(i)", user: "u\(i % 300)").jsonString + "\n" }
        try text.write(toFile: file, atomically: true, encoding: .utf8)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: touchstoneBinary())
        p.arguments = ["import", "--data", dir.path + "/data", "--schemas", repoRoot + "/Schemas/events", "--report-commits", "--commit-events", "4096", file]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait until a few commits are reported, then kill -9 mid-import.
        var reported: [(lines: Int, seq: UInt64)] = []
        var buffer = Data()
        while reported.count < 3 {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            let lines = String(decoding: buffer, as: UTF8.self).split(separator: "\n")
            reported = lines.compactMap { l in
                let f = l.split(separator: " ")
                guard f.count == 3, f[0] == "committed", let n = Int(f[1]), let s = UInt64(f[2]) else { return nil }
                return (n, s)
            }
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal)
        let lastReported = try #require(reported.last)

        let log = try EventLog(directory: dir.path + "/data/log")
        let report = try log.verify()
        #expect(report.ok, "\(report.problems)")
        #expect(log.lastSeq >= lastReported.seq)
        #expect(log.lastSeq < 60_000, "the import finished before the kill; nothing was tested")
        // Every line reported committed is present, in file order.
        let events = try log.events(from: 1, limit: lastReported.lines)
        #expect(events.map(\.messageId) == (0..<lastReported.lines).map { "k\($0)" })
    }

    @Test func mdbStatReadsTheEnvironment() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path)
        try log.append((0..<40).map { try prepared(track("m\($0)")) })  // blocks of 16, 16 and 8
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/mdb_stat")
        p.arguments = ["-s", "events", dir.path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0)
        #expect(text.contains("Entries: 3"))
    }

    @Test func backupIsACompactedReadableCopy() throws {
        let dir = TempDir()
        let log = try EventLog(directory: dir.path + "/log")
        try log.append((0..<100).map { try prepared(track("m\($0)")) })
        try log.backup(to: dir.path + "/copy")
        let copy = try EventLog(directory: dir.path + "/copy")
        #expect(copy.lastSeq == 100)
        #expect(try copy.verify().ok)
    }
}

@Suite struct ImportInputs {
    @Test func readsZstdCompressedNDJSON() throws {
        let dir = TempDir()
        let text = (0..<500).map { track("z\($0)").jsonString }.joined(separator: "\n") + "\n"
        let file = dir.path + "/events.ndjson.zst"
        FileManager.default.createFile(atPath: file, contents: Data(try Zstd.compress(Array(text.utf8))))
        let log = try EventLog(directory: dir.path + "/log")
        let s = try Importer(log: log, builder: builder, source: web).run(try LineReader(path: file))
        #expect(s.appended == 500)
        #expect(try log.events(from: 500, limit: 1).first?.messageId == "z499")
    }

    @Test func theCLIImportsFromStandardInputAndExportsWhatItStored() throws {
        let dir = TempDir()
        let input = (0..<20).map { track("s\($0)").jsonString }.joined(separator: "\n") + "\n{oops\n"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: touchstoneBinary())
        p.arguments = ["import", "--data", dir.path, "--schemas", repoRoot + "/Schemas/events", "-"]
        let stdin = Pipe(), out = Pipe()
        p.standardInput = stdin
        p.standardOutput = out
        try p.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        p.waitUntilExit()
        let summary = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0)
        #expect(summary.contains("appended 20, duplicates 0, rejected 1"))
        #expect(summary.contains("malformed_json: 1"))

        let e = Process()
        e.executableURL = URL(fileURLWithPath: touchstoneBinary())
        e.arguments = ["export", "--data", dir.path, "--from", "19"]
        let eout = Pipe()
        e.standardOutput = eout
        try e.run()
        let exported = eout.fileHandleForReading.readDataToEndOfFile()
        e.waitUntilExit()
        let lines = String(decoding: exported, as: UTF8.self).split(separator: "\n").map { try? JSON.parse(String($0)) }
        #expect(lines.count == 2)
        #expect(lines.first??["seq"] == .int(19))
        #expect(lines.last??["messageId"] == "s19")
        #expect(lines.last??["timestamp"] == "2025-03-01T12:00:00.000Z")
    }
}
