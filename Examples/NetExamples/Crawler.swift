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

    /// Both wall times of one run against a local `CrawlSite`.
    public struct Report: Sendable {
        public let pages: Int
        public let sequential: Duration
        public let concurrent: Duration
    }

    /// Starts a `CrawlSite` of `pages` pages on an ephemeral loopback port,
    /// crawls it sequentially and then concurrently, checks that both runs
    /// fetched every page with the right contents, and stops the site. Call
    /// it on a green thread.
    public static func run(pages: Int, latency: Duration) throws -> Report {
        let site = CrawlSite(pages: pages, latency: latency)
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        let server = go { try HTTPServer.serve(listener, handler: site.respond) }
        defer {
            listener.close()
            _ = try? server.join()
        }
        let clock = ContinuousClock()
        var sequential: [String: String] = [:]
        let sequentialTime = try clock.measure {
            sequential = try crawl(host: "127.0.0.1", port: listener.port, concurrently: false)
        }
        var concurrent: [String: String] = [:]
        let concurrentTime = try clock.measure {
            concurrent = try crawl(host: "127.0.0.1", port: listener.port, concurrently: true)
        }
        for (name, result) in [("sequential", sequential), ("concurrent", concurrent)] {
            guard result.count == pages else {
                throw Failure(description: "\(name) crawl fetched \(result.count) of \(pages) pages")
            }
            for page in 0..<pages where result[CrawlSite.path(page)] != CrawlSite.body(page) {
                throw Failure(description: "\(name) crawl: \(CrawlSite.path(page)) has the wrong contents")
            }
        }
        return Report(pages: pages, sequential: sequentialTime, concurrent: concurrentTime)
    }
}
