import Hummingbird

/// Guards query and admin routes: requires `Authorization: Bearer <API key>` whose scope
/// allows `scope` (an `admin` key may do what a `read` key may). Sets `context.principal`.
///
///     router.group("/v1/profiles")
///         .add(middleware: APIKeyMiddleware(keys: keyRing, scope: .read))
///         .get("{id}") { request, context in … }
///
/// Answers 401 for a missing, unknown or revoked key and 403 for one whose scope is too narrow.
public struct APIKeyMiddleware: RouterMiddleware {
    public typealias Context = TouchstoneRequestContext
    public let keys: KeyRing
    public let scope: Scope

    public init(keys: KeyRing, scope: Scope) {
        self.keys = keys
        self.scope = scope
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let credentials = Credentials(request) else {
            throw APIError(.unauthorized, code: "unauthorized", message: "missing API key: send Authorization: Bearer <key>",
                           headers: [.wwwAuthenticate: "Bearer"])
        }
        guard case .bearer(let key) = credentials else {
            throw APIError(.unauthorized, code: "unauthorized", message: "this API takes an API key as Authorization: Bearer <key>",
                           headers: [.wwwAuthenticate: "Bearer"])
        }
        switch keys.authenticateAPIKey(key) {
        case .failure(let refusal):
            context.logger.info("API key refused", metadata: ["reason": "\(refusal)"])
            throw APIError(.unauthorized, code: "unauthorized", message: refusal.message(expecting: .api),
                           headers: [.wwwAuthenticate: "Bearer"])
        case .success(let principal):
            guard case .apiKey(let name, let granted) = principal, granted.allows(scope) else {
                throw APIError.forbidden("this API key's scope does not allow \(scope.rawValue) calls")
            }
            var context = context
            context.principal = principal
            context.logger[metadataKey: "key"] = .string(name)
            return try await next(request, context)
        }
    }
}
