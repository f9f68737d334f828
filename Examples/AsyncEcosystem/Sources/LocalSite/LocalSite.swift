import Hummingbird
import NIOCore

/// A small web site to crawl: pages that link to each other, a link to a
/// page that does not exist (a 404), a link off the site (never followed),
/// and one page reachable only three links deep.
public enum LocalSite {
    /// Each page's path and the `href`s on it.
    public static let pages: [String: [String]] = [
        "/": ["/about", "/blog", "https://example.invalid/elsewhere"],
        "/about": ["/", "/team"],
        "/team": ["/about", "/missing"],
        "/blog": ["/blog/1", "/blog/2", "/"],
        "/blog/1": ["/blog/2", "/blog/archive"],
        "/blog/2": ["/blog/1"],
        "/blog/archive": ["/blog/archive/old"],
        "/blog/archive/old": ["/"],
    ]

    /// The paths a crawl from `/` reaches: every page, and the one
    /// broken link.
    public static let reachable: Set<String> = Set(pages.keys).union(["/missing"])

    /// A router that serves `pages` as HTML; any other path is a 404.
    public static func router() -> Router<BasicRequestContext> {
        let router = Router()
        for (path, links) in pages {
            let html = "<html><body>"
                + links.map { "<a href=\"\($0)\">\($0)</a>" }.joined(separator: "\n")
                + "</body></html>\n"
            router.get(RouterPath(path)) { _, _ in
                Response(
                    status: .ok,
                    headers: [.contentType: "text/html; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(string: html))
                )
            }
        }
        return router
    }
}
