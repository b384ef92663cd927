//go:build race

package spec

// RaceEnabled is set under -race, where sync.Pool drops items at random,
// so allocation counts are not the steady state's.
const RaceEnabled = true
