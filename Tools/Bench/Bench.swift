// touchstone-bench: measures Touchstone against its peers in the same run and prints
// Markdown tables for the README. Each subcommand covers one part of the system.

import ArgumentParser

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "touchstone-bench",
        abstract: "Benchmarks Touchstone against its peers (PostgreSQL, raw LMDB) in one run.",
        subcommands: [LogBench.self, HTTPBench.self, ProfileBench.self, ReplayBench.self, SegmentBench.self])
}
