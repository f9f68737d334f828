import GreenThreads

/// The crawler's local test site: an index at `/` linking `pages` pages at
/// `/page/0` ..., each answered after `latency` (a `GreenThread.sleep`,
/// standing in for a slow remote server), except every `slowEvery`th page
/// (pages `slowEvery - 1`, `2 * slowEvery - 1`, ...), answered after
/// `slowLatency`: the stragglers a per-request deadline is for.
public struct CrawlSite: Sendable {
    public let pages: Int
    public let latency: Duration
    public let slowEvery: Int?
    public let slowLatency: Duration

    public init(pages: Int, latency: Duration, slowEvery: Int? = nil, slowLatency: Duration = .zero) {
        precondition(pages >= 0, "CrawlSite needs a page count >= 0 (got \(pages))")
        precondition(slowEvery.map { $0 >= 1 } ?? true, "CrawlSite: slowEvery must be at least 1 (got \(slowEvery ?? 0))")
        self.pages = pages
        self.latency = latency
        self.slowEvery = slowEvery
        self.slowLatency = slowLatency
    }

    /// Whether page `page` is one of the slow ones.
    public func isSlow(_ page: Int) -> Bool {
        slowEvery.map { page % $0 == $0 - 1 } ?? false
    }

    public static func path(_ page: Int) -> String { "/page/\(page)" }

    /// What page `page` contains; the crawler checks every body against it.
    public static func body(_ page: Int) -> String {
        "<html><body><h1>Page \(page)</h1><p>\(String(repeating: "green threads ", count: 1 + page % 7))</p></body></html>\n"
    }

    public static func index(pages: Int) -> String {
        "<html><body>\n" + (0..<pages).map { "<a href=\"\(path($0))\">page \($0)</a>\n" }.joined() + "</body></html>\n"
    }

    public func respond(to request: HTTPRequest) -> HTTPResponse {
        let html = HTTPHeaders([("Content-Type", "text/html; charset=utf-8")])
        guard request.method == "GET" else { return HTTPResponse(status: 405, headers: html) }
        // Interrupted (the server is shutting down): answer at once.
        let page = request.target.hasPrefix("/page/") ? Int(request.target.dropFirst("/page/".count)) : nil
        let delay = page.map { isSlow($0) } ?? false ? slowLatency : latency
        do { try GreenThread.sleep(for: delay) } catch { return HTTPResponse(status: 503, headers: html) }
        if request.target == "/" {
            return HTTPResponse(status: 200, headers: html, body: Array(Self.index(pages: pages).utf8))
        }
        if request.target.hasPrefix("/page/"), let n = Int(request.target.dropFirst("/page/".count)), (0..<pages).contains(n) {
            return HTTPResponse(status: 200, headers: html, body: Array(Self.body(n).utf8))
        }
        return HTTPResponse(status: 404, headers: html, body: Array("no page \(request.target)\n".utf8))
    }
}
