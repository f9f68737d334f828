/// The `http-hello` example's handler: "Hello, world!" at `/`, and `POST
/// /echo` returns the request body (exercising Content-Length bodies).
public enum HelloApp {
    public static let greeting = "Hello, world!\n"

    public static func respond(to request: HTTPRequest) -> HTTPResponse {
        let text = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8")])
        switch (request.method, request.target) {
        case ("GET", "/"), ("HEAD", "/"):
            return HTTPResponse(status: 200, headers: text, body: Array(greeting.utf8))
        case ("POST", "/echo"):
            return HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "application/octet-stream")]),
                                body: request.body)
        case (_, "/"), (_, "/echo"):
            var headers = text
            headers.add("Allow", request.target == "/" ? "GET, HEAD" : "POST")
            return HTTPResponse(status: 405, headers: headers, body: Array("method \(request.method) not allowed\n".utf8))
        default:
            return HTTPResponse(status: 404, headers: text, body: Array("no page at \(request.target)\n".utf8))
        }
    }
}
