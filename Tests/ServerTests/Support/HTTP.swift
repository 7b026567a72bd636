import CompressNIO
import Foundation
import Hummingbird
import HummingbirdTesting
import JSONCore
import NIOCore

/// A small HTTP/1.1 client for the end-to-end tests: one keep-alive connection to the server
/// on loopback (Hummingbird's NIO test client).
final class Connection: Sendable {
    let client: TestClient

    init(port: Int, timeout: Duration = .seconds(30)) {
        client = TestClient(host: "127.0.0.1", port: port, configuration: .init(timeout: timeout))
        client.connect()
    }

    func send(_ method: HTTPRequest.Method, _ path: String, headers: HTTPFields = [:], body: [UInt8]? = nil) async throws -> Reply {
        let r = try await client.execute(.init(path, method: method, headers: headers, body: body.map { ByteBuffer(bytes: $0) }))
        return Reply(status: Int(r.status.code), headers: r.head.headerFields, body: r.body.map { Array($0.readableBytesView) } ?? [])
    }

    func close() async { try? await client.shutdown() }
}

/// An answer: status, headers and body.
struct Reply: Sendable {
    let status: Int
    let headers: HTTPFields
    let body: [UInt8]
    var json: JSON { (try? JSON.parse(body)) ?? .null }
    var text: String { String(decoding: body, as: UTF8.self) }
    var errorCode: String? { json["error"]?["code"]?.stringValue }
}

enum HTTP {
    /// One request on a connection of its own.
    static func request(port: Int, _ method: HTTPRequest.Method, _ path: String, headers: HTTPFields = [:],
                        body: [UInt8]? = nil) async throws -> Reply {
        let c = Connection(port: port)
        defer { Task { await c.close() } }
        return try await c.send(method, path, headers: headers, body: body)
    }

    /// `Authorization: Basic base64(key:)`, as Segment's clients send a write key.
    static func basic(_ key: String) -> HTTPFields {
        [.authorization: "Basic " + Data((key + ":").utf8).base64EncodedString(), .contentType: "application/json"]
    }

    static func bearer(_ key: String) -> HTTPFields { [.authorization: "Bearer " + key] }

    static func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        var b = ByteBuffer(bytes: bytes)
        let out = try b.compress(with: .gzip())
        return Array(out.readableBytesView)
    }
}

/// A message as Segment's clients build it, with a fresh messageId unless one is given.
func message(_ type: String, _ fields: JSON = [:], messageId: String = UUID().uuidString) -> JSON {
    var m = fields
    m["type"] = .string(type)
    m["messageId"] = .string(messageId)
    if m["userId"] == nil && m["anonymousId"] == nil { m["userId"] = "u-test" }
    m["timestamp"] = "2026-03-01T12:00:00.000Z"
    return m
}
