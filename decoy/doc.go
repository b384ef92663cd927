// Package decoy owns decoy APIs and honeytokens: the Trap matches decoy
// paths (in context, under a configured API) and decoy APIs (whole fake
// APIs), answers them with plausible pages carrying fresh honeytokens, and
// turns a hit, or the later use of a honeytoken, into blocked identities and
// a decoy attack record. Trap.Hook is the enforcement hot path's decoy hook
// (detect.Enforcer.SetDecoy).
//
// The pages: rules.go says which page a path gets, pages.go builds each
// page from its template in templates/ (rendered by render.go), and
// generate.go is the seeded generator of their varying values. Every page
// is pinned byte for byte by testdata/golden (go test -run TestGolden
// -update rewrites them).
package decoy
