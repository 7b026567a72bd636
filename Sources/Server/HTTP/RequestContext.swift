import Hummingbird

/// The request context of every Touchstone route: Hummingbird's core (logger with the
/// request id, path parameters) and who the request authenticated as, once an auth step ran.
public struct TouchstoneRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `APIKeyMiddleware` (query and admin routes) or the tracking handler (write keys).
    public var principal: Principal?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// Bodies are read by the routes themselves, each against its own configured limit.
    public var maxUploadSize: Int { 4 << 20 }
}
