package behaviour

import "time"

// t0 is the injected "now" of every test: nothing here reads the clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// get returns the state of key, nil if none.
func (s *shard) get(key stateKey) *identityState { return s.lookup(key, s.hash(key)) }
