import Foundation
import Hummingbird
import JSONCore
import Logging
import NIOCore

/// An error answer of the API: `{"success":false,"error":{"code":…,"message":…}}` with its
/// HTTP status. Handlers throw it; `ErrorMiddleware` turns it (and Hummingbird's own
/// `HTTPError`s) into that body.
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    /// A stable machine code, e.g. `unauthorized`, `malformed_json`, `too_large`.
    public var code: String
    /// What is wrong, in words a person can act on. Never contains a key or message content.
    public var message: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public static func unauthorized(_ message: String) -> APIError {
        APIError(.unauthorized, code: "unauthorized", message: message,
                 headers: [.wwwAuthenticate: "Basic realm=\"touchstone\""])
    }

    public static func forbidden(_ message: String) -> APIError {
        APIError(.forbidden, code: "forbidden", message: message)
    }

    public var response: Response {
        let body: JSON = ["success": false, "error": ["code": .string(code), "message": .string(message)]]
        return Response.json(body, status: status, headers: headers)
    }
}

extension Response {
    /// A JSON response with `body` written compactly.
    public static func json(_ body: JSON, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var h = headers
        h[.contentType] = "application/json"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: body.jsonBytes())))
    }

    /// A JSON response whose body is `text`, JSON the caller wrote.
    public static func json(text: some Sequence<UInt8>, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: text)))
    }
}

extension APIError {
    /// The answer for any error leaving a route: an `APIError` as it is, Hummingbird's
    /// `HTTPError` (404, 405, …) with a code named after its status, anything else as a 500
    /// whose details go to the log only.
    static func answering(_ error: any Error, logger: Logger) -> APIError {
        switch error {
        case let e as APIError:
            return e
        case let e as HTTPError:
            let code = e.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")
            return APIError(e.status, code: code, message: e.body ?? e.status.reasonPhrase, headers: e.headers)
        default:
            logger.error("unhandled error", metadata: ["error": "\(error)"])
            return APIError(.internalServerError, code: "internal", message: "internal error; see the server log")
        }
    }
}
