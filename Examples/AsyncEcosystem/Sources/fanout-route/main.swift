// A Hummingbird server whose /squares handler fans out to green threads.
//
//     swift run fanout-route [PORT]       (default 8080)
//     curl 'http://127.0.0.1:8080/squares?count=1000'
import FanoutRoute
import GreenThreads
import Hummingbird

let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 8080
let runtime = Runtime()
let router = Router()
FanoutRoute.add(to: router, runtime: runtime)
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
runtime.shutdown()
