import Foundation
import LMDB

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

    init(port: Int = 40000 + Int(getpid() % 20000)) throws {
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
        // The server inherits pg_ctl's output descriptors: don't capture them (a pipe would never close).
        _ = try asPostgres("\(bin)/pg_ctl", capture: false, ["-D", directory + "/db", "-l", directory + "/log", "-w", "-o",
                                           "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c shared_buffers=512MB -c max_wal_size=4GB",
                                           "start"])
    }

    func stop() {
        _ = try? asPostgres("\(bin)/pg_ctl", capture: false, ["-D", directory + "/db", "-m", "fast", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs SQL with psql, returning its unaligned output.
    @discardableResult
    func sql(_ statement: String, stdinFile: String? = nil) throws -> String {
        try asPostgres("\(bin)/psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-X", "-A", "-t", "-q",
                                      "-v", "ON_ERROR_STOP=1", "-c", statement], stdinFile: stdinFile)
    }

    func asPostgres(_ exe: String, capture: Bool = true, _ args: [String], stdinFile: String? = nil) throws -> String {
        if getuid() == 0 {
            return try run("/usr/sbin/runuser", ["-u", "postgres", "--", exe] + args, stdinFile: stdinFile, capture: capture)
        }
        return try run(exe, args, stdinFile: stdinFile, capture: capture)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Runs a program, returning its standard output; throws with its standard error on failure.
/// Uses posix_spawn and waitpid directly (Foundation's Process can miss a child's exit when
/// the child leaves a daemon behind, as `pg_ctl start` does). Without `capture`, output goes
/// to /dev/null — needed when a daemon inherits the descriptors and would hold a pipe open.
@discardableResult
func run(_ exe: String, _ args: [String], stdinFile: String? = nil, capture: Bool = true) throws -> String {
    var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
    if capture {
        pipe(&outPipe)
        pipe(&errPipe)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        posix_spawn_file_actions_addclose(&actions, outPipe[0])
        posix_spawn_file_actions_addclose(&actions, errPipe[0])
    } else {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    }
    posix_spawn_file_actions_addopen(&actions, 0, stdinFile ?? "/dev/null", O_RDONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + args).map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    // The child starts with no blocked signals and default handlers: this process's threads
    // block some (SIGALRM among them), and pgbench -T needs its alarm.
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var empty = sigset_t(), all = sigset_t()
    sigemptyset(&empty)
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attr, &empty)
    posix_spawnattr_setsigdefault(&attr, &all)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, exe, &actions, &attr, argv, environ)
    if capture { close(outPipe[1]); close(errPipe[1]) }
    guard rc == 0 else { throw BenchError("cannot start \(exe): \(String(cString: strerror(rc)))") }
    @Sendable func drain(_ fd: Int32) -> Data {
        var data = Data()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            data.append(contentsOf: buf[..<n])
        }
        close(fd)
        return data
    }
    var out = Data(), err = Data()
    if capture {
        // Read stderr on another thread so neither pipe can fill and block the child.
        let errFD = errPipe[0]
        final class Box: @unchecked Sendable { var data = Data() }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let t = Thread { box.data = drain(errFD); done.signal() }
        t.start()
        out = drain(outPipe[0])
        done.wait()
        err = box.data
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exited = (status & 0x7f) == 0
    let code = (status >> 8) & 0xff
    guard exited && code == 0 else {
        throw BenchError("\(exe) \(args.prefix(3).joined(separator: " ")) failed (\(code)): \(String(decoding: err, as: UTF8.self))")
    }
    return String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Seconds elapsed while running `body`.
func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = ContinuousClock.now
    let r = try body()
    let d = ContinuousClock.now - start
    return (r, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
}

/// A `/proc/self/status` field in bytes (its value is in kB), 0 when absent.
private func statusBytes(_ field: String) -> Int {
    guard let s = readWholeFile("/proc/self/status") else { return 0 }
    for line in s.split(separator: "\n") where line.hasPrefix(field + ":") {
        return (line.split(separator: " ").compactMap { Int($0) }.first ?? 0) * 1024
    }
    return 0
}

/// Peak resident set size of this process in bytes (VmHWM).
func peakRSS() -> Int { statusBytes("VmHWM") }

/// Anonymous (heap) resident memory in bytes — RSS without the memory-mapped log file,
/// whose pages the kernel counts in VmRSS as the log grows.
func anonRSS() -> Int { statusBytes("RssAnon") }

/// Samples `anonRSS()` every 50 ms until stopped; `peak` is the highest seen.
final class MemorySampler: @unchecked Sendable {
    private let lock = NSLock()
    private var running = true
    private var highest = 0
    init() {
        Thread {
            while self.lock.withLock({ self.running }) {
                let now = anonRSS()
                self.lock.withLock { self.highest = max(self.highest, now) }
                usleep(50_000)
            }
        }.start()
    }
    func stop() -> Int { lock.withLock { running = false; return highest } }
}

func fmt(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }
