import AsyncHTTPClient
import GreenThreads
import NIOCore

/// A breadth-first crawler of one site whose pages are fetched each by a
/// green thread of its own, through AsyncHTTPClient.
///
/// The green threads run ordinary blocking-style code: fetch, parse, return
/// the links. The one asynchronous step, the HTTP exchange, goes through
/// `GreenThread.await`, which parks the green thread (never its worker)
/// until AsyncHTTPClient's event loop has the whole body; the parsing then
/// runs on the green thread, off the event loop. A crawl level is one
/// fan-out (`go` per page) and one join, so the levels need no shared,
/// locked frontier: the crawling green thread alone owns `seen`.
///
/// Only links on the start page's origin are followed: paths (`/a`), and
/// absolute URLs whose scheme and host are the start's. Each page is
/// fetched once, and at most `maxPages` pages in all.
public struct GreenCrawler: Sendable {
    /// One fetched page: the status code, and the links found on it.
    public struct Page: Sendable, Equatable {
        /// The response's status code.
        public var status: Int
        /// The `href`s of a 200 page, in order; empty for any other status.
        public var links: [String]

        public init(status: Int, links: [String]) {
            self.status = status
            self.links = links
        }
    }

    /// The client the fetches go through.
    public let client: HTTPClient
    /// The most pages one crawl fetches.
    public let maxPages: Int
    /// How long one fetch (headers and body) may take.
    public let timeout: TimeAmount

    /// A crawler that fetches through `client` (the process-wide shared
    /// one by default), at most `maxPages` pages, each within `timeout`.
    public init(client: HTTPClient = .shared, maxPages: Int = 1_000, timeout: TimeAmount = .seconds(10)) {
        self.client = client
        self.maxPages = maxPages
        self.timeout = timeout
    }

    /// Crawls from `start` (for example `http://127.0.0.1:8080/`) and
    /// returns each page reached, by path, with its status and links.
    ///
    /// Call it on a green thread (`go`, `Runtime.run`, `Runtime.spawn`). A
    /// fetch that fails (refused, timed out) fails the crawl.
    public func crawl(from start: String) throws -> [String: Page] {
        guard let origin = Origin(start) else { throw CrawlError.notAnHTTPURL(start) }
        let first = origin.path(of: start) ?? "/"
        var seen: Set<String> = [first]
        var frontier = [first]
        var pages: [String: Page] = [:]
        while !frontier.isEmpty {
            let fetches = frontier.map { path in go { try fetch(origin.url(path)) } }
            var next: [String] = []
            for (path, fetch) in zip(frontier, fetches) {
                let page = try fetch.join()
                pages[path] = page
                for link in page.links {
                    guard let target = origin.path(of: link), seen.count < maxPages,
                          seen.insert(target).inserted else { continue }
                    next.append(target)
                }
            }
            frontier = next
        }
        return pages
    }

    /// One page: the exchange on AsyncHTTPClient's event loop, the parse
    /// on the calling green thread.
    public func fetch(_ url: String) throws -> Page {
        let (client, timeout) = (client, timeout)
        let (status, body) = try GreenThread.await {
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: timeout)
            let body = try await response.body.collect(upTo: 4 << 20)
            return (Int(response.status.code), String(buffer: body))
        }
        return Page(status: status, links: status == 200 ? Self.links(in: body) : [])
    }

    /// The `href` values of `html`, in order.
    public static func links(in html: String) -> [String] {
        var links: [String] = []
        var rest = html[...]
        while let attribute = rest.firstRange(of: "href=\"") {
            rest = rest[attribute.upperBound...]
            guard let close = rest.firstIndex(of: "\"") else { break }
            links.append(String(rest[..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return links
    }
}

/// Why a crawl did not start.
public enum CrawlError: Error, Equatable {
    /// The start is not an `http://` or `https://` URL with a host.
    case notAnHTTPURL(String)
}

/// The scheme and authority of the start URL: what a link must share to be
/// followed.
struct Origin: Sendable {
    let prefix: String  // "http://host:port"

    init?(_ url: String) {
        guard let scheme = url.firstRange(of: "://"),
              ["http", "https"].contains(url[..<scheme.lowerBound]) else { return nil }
        let authority = url[scheme.upperBound...].prefix { $0 != "/" }
        guard !authority.isEmpty else { return nil }
        prefix = String(url[..<scheme.upperBound] + authority)
    }

    /// The path a link names on this origin, nil for a link elsewhere (or
    /// a fragment, a relative path, a mailto: and the like).
    func path(of link: String) -> String? {
        if link.hasPrefix("/") && !link.hasPrefix("//") { return link }
        guard link.hasPrefix(prefix) else { return nil }
        let path = link.dropFirst(prefix.count)
        if path.isEmpty { return "/" }
        return path.hasPrefix("/") ? String(path) : nil
    }

    func url(_ path: String) -> String { prefix + path }
}
