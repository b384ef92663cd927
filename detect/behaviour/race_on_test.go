//go:build race

package behaviour

// raceDetector is true when the tests run with -race: single-goroutine
// property tests take fewer steps there (the race detector has nothing to
// find in them, and slows them tenfold); the pass without -race takes all.
const raceDetector = true
