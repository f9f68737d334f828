import Testing

/// The suites that open sockets, one test at a time: each loads the machine
/// (the load generator runs flat out), and other targets' timing checks run
/// beside them.
@Suite("NetExamples", .serialized)
enum NetExampleSuites {}
