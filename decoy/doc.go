// Package decoy owns decoy APIs and honeytokens: the Trap matches decoy
// paths (in context, under a configured API) and decoy APIs (whole fake
// APIs), answers them with plausible pages carrying fresh honeytokens
// (rules.go: which page a path gets; pages.go and templates/: the pages;
// generate.go: the seeded generator of their varying values), and turns a hit, or the later use of a honeytoken, into
// blocked identities and a decoy attack record. Trap.Hook is the
// enforcement hot path's decoy hook (detect.Enforcer.SetDecoy).
package decoy
