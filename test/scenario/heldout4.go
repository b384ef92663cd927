package scenario

// A fourth held-out set of stealthy variants (names ending _h4), written
// from the threat model only and never tuned on: the next held-out set
// (NextHeldOutVariants), generated only with Config.NextHeldOut.

// heldOutVariants4 lists the fourth held-out set, in report order.
func heldOutVariants4() []StealthVariant { return nil }
