package observe

import "time"

// t0 is the injected "now" of every test: nothing here reads the clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
