// Package observe holds what the detect pipeline records about traffic
// for people to look at, beside detection: the inventory (configured and
// discovered APIs, their endpoint templates and status classes, bounded by
// what the APIs showed to be real), the per-API activity over time, and the
// forensic record of each identity (IPs, methods, templates, APIs, hours),
// LRU-capped. Each is a detect.Sink.
package observe
