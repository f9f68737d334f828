// crawler: the seed documents' crawler. It starts a local test site inside
// the process (an index and N pages, each answered after a simulated 50 ms of
// latency), then fetches every page twice: one after another, and with one
// green thread per page. Then it crawls a site whose every 10th page is ten
// times slower the way a service would: a group of at most 8 fetches at a
// time (`withGreenGroup(limit:)`), each under its own deadline
// (`withDeadline(after:)`), giving up the stragglers. The wall times are
// printed and every page's contents are checked.
//
//     swift run -c release crawler [PAGES] [LATENCY_MS]      (default 50 pages, 50 ms)
import GreenThreads
import NetExamples
#if canImport(Glibc)
import Glibc
#endif

let args = Array(CommandLine.arguments.dropFirst())
guard args.count <= 2, let pages = args.first.map({ Int($0) }) ?? 50, (1...5000).contains(pages),
      let latencyMs = args.dropFirst().first.map({ Int($0) }) ?? 50, (0...10_000).contains(latencyMs)
else {
    logError("crawler: PAGES must be in 1...5000 and LATENCY_MS in 0...10000\nusage: crawler [PAGES] [LATENCY_MS]")
    exit(2)
}

func ms(_ d: Duration) -> String {
    let v = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    return "\((v * 10).rounded() / 10) ms"
}

do {
    let report = try Runtime().run { try Crawler.run(pages: pages, latency: .milliseconds(latencyMs)) }
    print("crawled \(report.pages) pages (each answered after \(latencyMs) ms), contents checked")
    print("  sequential: \(ms(report.sequential))")
    print("  concurrent: \(ms(report.concurrent))  (one green thread per page)")
    let speedup = report.sequential / report.concurrent
    print("  speed-up:   \((speedup * 10).rounded() / 10)x")
    print("  bounded:    \(ms(report.bounded))  (\(report.boundedLimit) at a time, each page given \(ms(report.boundedDeadline));"
          + " every 10th page answers 10x slower: \(report.boundedTimedOut) gave up)")
} catch {
    logError("crawler: \(error)")
    exit(1)
}
