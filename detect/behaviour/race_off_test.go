//go:build !race

package behaviour

// raceDetector: see race_on_test.go.
const raceDetector = false
