//go:build !race

package flood_test

// raceDetector: see race_on_test.go.
const raceDetector = false
