// Package demo is what `vigil demo` runs beside Vigil: the sample API (the
// talk's bidding shop), a local HTTP front door that consults Vigil over
// Envoy's ext_proc protocol (a development stand-in for Envoy, not for
// production), the generator of benign traffic that pre-trains the model in
// recorded time and keeps a background load, and the scripted attack
// timeline with its report. It does not import package server: the command
// that wires it to a running Vigil lives there.
package demo
