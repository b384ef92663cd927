//go:build race

package envoy

// raceEnabled is set under -race, where sync.Pool drops items at random,
// so allocation counts are not the steady state's.
const raceEnabled = true
