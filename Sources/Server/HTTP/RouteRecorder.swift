import Hummingbird

/// A router front that remembers every route added through it (groups included), so the
/// served routes can be listed — by the OpenAPI test, and by whoever adds a concern.
public final class RouteRecorder<Context: RequestContext>: RouterMethods, @unchecked Sendable {
    /// A method and a path in OpenAPI form (`/v1/segments/{key}`).
    public struct Route: Hashable, Sendable, CustomStringConvertible {
        public let method: String
        public let path: String
        public var description: String { "\(method) \(path)" }
    }

    public let router: Router<Context>
    /// Only mutated while routes are being built, before the server starts.
    public private(set) var routes: [Route] = []

    public init(_ router: Router<Context>) { self.router = router }

    @discardableResult
    public func on<Responder: HTTPResponder>(_ path: RouterPath, method: HTTPRequest.Method, responder: Responder) -> Self
    where Responder.Context == Context {
        routes.append(Route(method: method.rawValue, path: path.description))
        router.on(path, method: method, responder: responder)
        return self
    }

    @discardableResult
    public func add(middleware: any MiddlewareProtocol<Request, Response, Context>) -> Self {
        router.add(middleware: middleware)
        return self
    }
}
