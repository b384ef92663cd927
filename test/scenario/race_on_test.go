//go:build race

package scenario

// raceDetector is true when the tests run with -race. The suite replays
// recorded traffic through an engine whose concurrency the detect and e2e
// tests already run under the race detector; instrumented, the fast suite
// takes about three minutes instead of half of one, so it runs in the
// suite's pass without -race (.ci/run runs both).
const raceDetector = true
