import Testing

/// The Dream Engines suites, run one test at a time: each starts a daemon, a simulator and a
/// database, and some are heavy (10,000-row uploads); side by side they starve the rest of the
/// suite's timing-sensitive tests on a 2-core machine.
@Suite("Dream Engines", .hangGuard, .serialized)
struct DreamEnginesTests {}
