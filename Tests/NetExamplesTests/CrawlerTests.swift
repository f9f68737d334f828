import GreenThreads
import Testing
@testable import NetExamples

extension NetExampleSuites {
/// The crawler example: the concurrent crawl overlaps the pages' latency.
@Suite("Crawler")
struct CrawlerTests {
    @Test func concurrentCrawlOverlapsLatency() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        // 20 pages of 50 ms: sequentially >= 1 s; concurrently about one
        // page's latency. Crawler.run itself checks every page's contents.
        try expectTimely { () throws -> [TimingBound] in
            let report = try rt.run { try Crawler.run(pages: 20, latency: .milliseconds(50)) }
            #expect(report.pages == 20)
            #expect(report.sequential >= .milliseconds(20 * 50))
            // Pages 9 and 19 are the slow ones; run checked which gave up.
            #expect(report.boundedTimedOut == 2)
            // Busy or not, overlapping the latency must beat waiting it out.
            return [.below("the concurrent crawl", report.concurrent, report.sequential / 2,
                           loaded: report.sequential)]
        }
    }

    @Test func linksInOrder() {
        #expect(Crawler.links(in: CrawlSite.index(pages: 3)) == ["/page/0", "/page/1", "/page/2"])
        #expect(Crawler.links(in: "<a href=\"/x\">x</a> <a href=\"broken") == ["/x"])
        #expect(Crawler.links(in: "no links").isEmpty)
    }

    @Test func missingPageIsAnError() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try rt.run {
            let site = CrawlSite(pages: 1, latency: .zero)
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let server = go { try HTTPServer.serve(listener, handler: site.respond) }
            defer {
                listener.close()
                _ = try? server.join()
            }
            #expect(try HTTPClient.get(host: "127.0.0.1", port: listener.port, path: "/page/7").status == 404)
            #expect(try HTTPClient.get(host: "127.0.0.1", port: listener.port, path: "/page/0").bodyText == CrawlSite.body(0))
        }
    }
}
}
