// Crawls LocalSite, served by Hummingbird on a loopback port, with one
// green thread per page fetching through AsyncHTTPClient.
//
//     swift run green-crawler
import GreenCrawler
import GreenThreads
import LocalSite

let runtime = Runtime()
let pages = try await withLocalServer(LocalSite.router()) { port in
    try await runtime.spawn { try GreenCrawler().crawl(from: "http://127.0.0.1:\(port)/") }.value
}
for (path, page) in pages.sorted(by: { $0.key < $1.key }) {
    print(page.status, path, page.links.count, "links")
}
print("\(pages.count) pages;", runtime.stats)
runtime.shutdown()
