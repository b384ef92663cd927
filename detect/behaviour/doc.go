// Package behaviour is Vigil's behavioural detection engine: a sink of the
// detect pipeline that keeps, per identity, windows of what it did (rates,
// errors, bytes) and HyperLogLog sketches of what it touched (paths, IPs,
// user agents, objects), in shards that own their identities; per API, a
// model that trains on the traffic and learns the thresholds Tn and Tx of
// every variable, and the multivariate model (an Isolation Forest, package
// anomaly); model documents to export, import, edit and snapshot; and
// explained attack records (detect.Attack) raised when a variable passes its
// threshold, put on the block list when the API is in block mode.
//
// It takes its time from the records, so replay runs exactly as live.
package behaviour
