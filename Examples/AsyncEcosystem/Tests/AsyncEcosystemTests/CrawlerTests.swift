import AsyncHTTPClient
import GreenCrawler
import GreenThreads
import LocalSite
import Testing

@Suite("Green-thread crawler over AsyncHTTPClient")
struct CrawlerTests {
    @Test func crawlReachesEveryPageOfTheLocalSite() async throws {
        let runtime = Runtime(workers: 2)
        defer { runtime.shutdown() }
        let pages = try await withLocalServer(LocalSite.router()) { port in
            try await runtime.spawn { try GreenCrawler().crawl(from: "http://127.0.0.1:\(port)/") }.value
        }
        #expect(Set(pages.keys) == LocalSite.reachable)
        for (path, links) in LocalSite.pages {
            #expect(pages[path] == GreenCrawler.Page(status: 200, links: links), "\(path)")
        }
        #expect(pages["/missing"]?.status == 404)
        // One green thread per page fetched, beside the crawling one.
        #expect(runtime.stats.spawned >= 1 + LocalSite.reachable.count)
    }

    @Test func maxPagesBoundsTheCrawl() async throws {
        let runtime = Runtime(workers: 2)
        defer { runtime.shutdown() }
        let pages = try await withLocalServer(LocalSite.router()) { port in
            try await runtime.spawn { try GreenCrawler(maxPages: 3).crawl(from: "http://127.0.0.1:\(port)/") }.value
        }
        // "/" and the first two same-site links on it.
        #expect(Set(pages.keys) == ["/", "/about", "/blog"])
    }

    @Test func aRefusedFetchFailsTheCrawl() async throws {
        let runtime = Runtime(workers: 1)
        defer { runtime.shutdown() }
        // A port that was just listening and no longer is.
        let closed = try await withLocalServer(LocalSite.router()) { port in port }
        await #expect(throws: (any Error).self) {
            try await runtime.spawn { try GreenCrawler(timeout: .seconds(1)).crawl(from: "http://127.0.0.1:\(closed)/") }.value
        }
        await #expect(throws: CrawlError.notAnHTTPURL("ftp://host/")) {
            try await runtime.spawn { try GreenCrawler().crawl(from: "ftp://host/") }.value
        }
    }

    @Test func linksAreTheHrefsInOrder() {
        #expect(GreenCrawler.links(in: #"<a href="/a">x</a> <a class="c" href="http://h/b">"#) == ["/a", "http://h/b"])
        #expect(GreenCrawler.links(in: "no links") == [])
        #expect(GreenCrawler.links(in: #"<a href="/unterminated"#) == [])
    }
}
