//go:build race

package flood_test

// raceDetector is true when the tests run with -race. The flood's client
// runs in the test process: instrumented, TestFloodStaysInBudget takes
// about 30 s instead of 12, for nothing the race detector would see (the
// server is the built binary, not instrumented), so it runs in the pass
// without -race (.ci/run runs both).
const raceDetector = true
