import Foundation

/// A throwaway PostgreSQL 15 cluster on loopback, the peer the benchmarks compare against.
/// Started in a temporary directory (as the `postgres` user when run as root), stopped and
/// removed by `stop()`.
final class PostgresPeer {
    let directory: String
    let port: Int
    let bin: String

    static func findBin() -> String? {
        let fm = FileManager.default
        for v in ["17", "16", "15"] where fm.fileExists(atPath: "/usr/lib/postgresql/\(v)/bin/initdb") {
            return "/usr/lib/postgresql/\(v)/bin"
        }
        return nil
    }

    init(port: Int = 55432) throws {
        guard let bin = PostgresPeer.findBin() else {
            throw BenchError("PostgreSQL not found: apt-get install postgresql (Tools/bench.sh does)")
        }
        self.bin = bin
        self.port = port
        directory = NSTemporaryDirectory() + "touchstone-pg-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 { _ = try run("/bin/chown", ["-R", "postgres:postgres", directory]) }
        _ = try asPostgres("\(bin)/initdb", ["-D", directory + "/db", "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        _ = try asPostgres("\(bin)/pg_ctl", ["-D", directory + "/db", "-l", directory + "/log", "-w", "-o",
                                           "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c shared_buffers=512MB -c max_wal_size=4GB",
                                           "start"])
    }

    func stop() {
        _ = try? asPostgres("\(bin)/pg_ctl", ["-D", directory + "/db", "-m", "fast", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs SQL with psql, returning its unaligned output.
    @discardableResult
    func sql(_ statement: String, stdinFile: String? = nil) throws -> String {
        try asPostgres("\(bin)/psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-X", "-A", "-t", "-q",
                                      "-v", "ON_ERROR_STOP=1", "-c", statement], stdinFile: stdinFile)
    }

    func asPostgres(_ exe: String, _ args: [String], stdinFile: String? = nil) throws -> String {
        if getuid() == 0 {
            return try run("/usr/sbin/runuser", ["-u", "postgres", "--", exe] + args, stdinFile: stdinFile)
        }
        return try run(exe, args, stdinFile: stdinFile)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Runs a program, returning its standard output; throws with its standard error on failure.
@discardableResult
func run(_ exe: String, _ args: [String], stdinFile: String? = nil) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    if let stdinFile { p.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: stdinFile)) }
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw BenchError("\(exe) \(args.prefix(3).joined(separator: " ")) failed: \(String(decoding: errData, as: UTF8.self))")
    }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Seconds elapsed while running `body`.
func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = ContinuousClock.now
    let r = try body()
    let d = ContinuousClock.now - start
    return (r, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
}

/// Peak resident set size of this process in bytes (from /proc/self/status VmHWM).
func peakRSS() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}

func fmt(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }
