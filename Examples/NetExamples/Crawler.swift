import GreenThreads

/// The seed documents' crawler: fetch an index page, then every page it
/// links to, one after another or one green thread per page.
public enum Crawler {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Every page linked from `/`, path → body, fetched sequentially or
    /// concurrently (one green thread per page).
    public static func crawl(host: String, port: Int, concurrently: Bool) throws -> [String: String] {
        let index = try fetch(host: host, port: port, path: "/")
        let links = self.links(in: index)
        let bodies: [String]
        if concurrently {
            bodies = try joinAll(links.map { link in go { try fetch(host: host, port: port, path: link) } })
        } else {
            bodies = try links.map { try fetch(host: host, port: port, path: $0) }
        }
        return Dictionary(zip(links, bodies), uniquingKeysWith: { first, _ in first })
    }

    /// What a crawl under a per-page deadline got: the pages that came in
    /// time (path → body) and the paths that did not.
    public struct BoundedCrawl: Sendable {
        public var pages: [String: String] = [:]
        public var timedOut: [String] = []
    }

    /// Every page linked from `/`, at most `limit` fetches at a time, each
    /// given `perPage` (its connect, request and response together): a page
    /// slower than that is given up and listed in `timedOut`, the crawl goes
    /// on. Any other failure (a refused connection, a bad status) cancels
    /// the fetches still running and is thrown once they have ended.
    public static func crawl(host: String, port: Int, limit: Int, perPage: Duration) throws -> BoundedCrawl {
        let index = try fetch(host: host, port: port, path: "/")
        let outcomes = try withGreenGroup(limit: limit) { (group: GreenGroup<(String, String?)>) in
            for link in links(in: index) {
                try group.go(name: "GET \(link)") {
                    do {
                        return (link, try withDeadline(after: perPage) { try fetch(host: host, port: port, path: link) })
                    } catch is DeadlineExceeded {
                        return (link, nil)
                    }
                }
            }
        }
        var crawl = BoundedCrawl()
        for (link, body) in outcomes {
            if let body { crawl.pages[link] = body } else { crawl.timedOut.append(link) }
        }
        return crawl
    }

    /// The `href="..."` targets in `html`, in order.
    public static func links(in html: String) -> [String] {
        var out: [String] = []
        var rest = Substring(html)
        while let r = rest.firstRange(of: "href=\"") {
            rest = rest[r.upperBound...]
            guard let close = rest.firstIndex(of: "\"") else { break }
            out.append(String(rest[..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return out
    }

    private static func fetch(host: String, port: Int, path: String) throws -> String {
        let response = try HTTPClient.get(host: host, port: port, path: path)
        guard response.status == 200 else { throw Failure(description: "GET \(path): status \(response.status)") }
        return response.bodyText
    }

    /// The wall times of one run against a local `CrawlSite`.
    public struct Report: Sendable {
        public let pages: Int
        public let sequential: Duration
        public let concurrent: Duration
        /// The bounded crawl: `boundedLimit` fetches at a time, each under a
        /// deadline of `boundedDeadline`, against a site whose every 10th
        /// page is 10 times slower; `boundedTimedOut` of them gave up.
        public let bounded: Duration
        public let boundedLimit: Int
        public let boundedDeadline: Duration
        public let boundedTimedOut: Int
    }

    /// Starts a `CrawlSite` of `pages` pages on an ephemeral loopback port,
    /// crawls it sequentially and then concurrently, checks that both runs
    /// fetched every page with the right contents, and stops the site. Call
    /// it on a green thread.
    public static func run(pages: Int, latency: Duration) throws -> Report {
        let clock = ContinuousClock()
        var sequential: [String: String] = [:]
        var concurrent: [String: String] = [:]
        let (sequentialTime, concurrentTime) = try serving(CrawlSite(pages: pages, latency: latency)) { port in
            (try clock.measure { sequential = try crawl(host: "127.0.0.1", port: port, concurrently: false) },
             try clock.measure { concurrent = try crawl(host: "127.0.0.1", port: port, concurrently: true) })
        }
        for (name, result) in [("sequential", sequential), ("concurrent", concurrent)] {
            guard result.count == pages else {
                throw Failure(description: "\(name) crawl fetched \(result.count) of \(pages) pages")
            }
            for page in 0..<pages where result[CrawlSite.path(page)] != CrawlSite.body(page) {
                throw Failure(description: "\(name) crawl: \(CrawlSite.path(page)) has the wrong contents")
            }
        }
        let (boundedTime, limit, deadline, timedOut) = try runBounded(pages: pages, latency: latency)
        return Report(pages: pages, sequential: sequentialTime, concurrent: concurrentTime,
                      bounded: boundedTime, boundedLimit: limit, boundedDeadline: deadline, boundedTimedOut: timedOut)
    }

    /// Runs `body` with `site` served on an ephemeral loopback port, then
    /// stops the site (after its open connections end).
    private static func serving<R>(_ site: CrawlSite, _ body: (_ port: Int) throws -> R) throws -> R {
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        let server = go { try HTTPServer.serve(listener, handler: site.respond) }
        defer {
            listener.close()
            _ = try? server.join()
        }
        return try body(listener.port)
    }

    /// The bounded crawl of `run`: 8 at a time, each page given 4 times the
    /// latency, against a site whose every 10th page takes 10 times it.
    /// Checks that exactly the slow pages timed out and every other page
    /// came with the right contents.
    private static func runBounded(pages: Int, latency: Duration) throws -> (Duration, Int, Duration, Int) {
        let limit = 8
        let deadline = latency * 4 + .milliseconds(20)
        let site = CrawlSite(pages: pages, latency: latency, slowEvery: 10, slowLatency: latency * 10 + .milliseconds(200))
        var result = BoundedCrawl()
        let time = try serving(site) { port in
            try ContinuousClock().measure { result = try crawl(host: "127.0.0.1", port: port, limit: limit, perPage: deadline) }
        }
        let slow = Set((0..<pages).filter(site.isSlow).map(CrawlSite.path))
        guard Set(result.timedOut) == slow else {
            throw Failure(description: "bounded crawl: \(result.timedOut.count) pages timed out, expected the \(slow.count) slow ones")
        }
        for page in 0..<pages where !site.isSlow(page) && result.pages[CrawlSite.path(page)] != CrawlSite.body(page) {
            throw Failure(description: "bounded crawl: \(CrawlSite.path(page)) missing or with the wrong contents")
        }
        return (time, limit, deadline, result.timedOut.count)
    }
}
