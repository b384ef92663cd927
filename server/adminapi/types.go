// Package adminapi is the wire contract of Vigil's admin HTTP API: the
// request and answer bodies as Go types, the OpenAPI document that
// describes the routes (served at /v1/openapi.json), and the one Go client
// (bearer token, error answers as errors, credentials kept out of error
// messages) that the CLI, the demo command and tests call the API with.
// The handlers (server/admin) encode these types, so a change to an answer
// is a change here, seen by every caller at compile time.
package adminapi

import (
	_ "embed"
	"time"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/detect/observe"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI document of the admin API.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

// Fields are declared in the order of their JSON names: the answers were
// JSON objects built from maps, whose keys encoding/json sorts, and they
// stay byte for byte what they were.

// Status is the answer of GET /healthz and /readyz.
type Status struct {
	Status string `json:"status"`
}

// ServerStatus is the answer of GET /v1/status: this replica's state.
type ServerStatus struct {
	// Cluster is this replica's view of the replicas sharing Redis;
	// omitted when no Redis is configured (a single node).
	Cluster *ClusterStatus `json:"cluster,omitempty"`
	// Ready is what /readyz answers: Redis has no part in it.
	Ready bool `json:"ready"`
}

// ClusterStatus is one replica's view of the cluster it shares Redis with.
// Degraded (Redis unreachable, slow or failing): the replica serves and
// detects on its local state, queues its list writes in the outbox and
// catches up when Redis is back.
type ClusterStatus struct {
	Degraded bool `json:"degraded"`
	// DegradedSince is when the current degraded spell began; omitted
	// while not degraded.
	DegradedSince time.Time `json:"degraded_since,omitzero"`
	// LastFlush is when this replica's shared behaviour windows were last
	// flushed to Redis and the merged windows read back; omitted before
	// the first flush.
	LastFlush time.Time `json:"last_flush,omitzero"`
	// Mode is ClusterModeStandalone (one Redis server) or ClusterModeCluster
	// (a Redis Cluster).
	Mode string `json:"mode"`
	// Outbox counts the list writes waiting for Redis.
	Outbox int `json:"outbox"`
	// PropagationLagSeconds is the time the last change of another replica
	// took to be applied here (from its write to Redis to this replica's
	// local copy); omitted before the first change.
	PropagationLagSeconds float64 `json:"propagation_lag_seconds,omitzero"`
	// RedisUp: the last exchange with Redis succeeded.
	RedisUp bool `json:"redis_up"`
	// ReplicaID names this replica (redis.replica_id, else the host name
	// and a random suffix).
	ReplicaID string `json:"replica_id"`
	// Replicas counts the live replicas, this one included.
	Replicas int `json:"replicas"`
	// SharingStopped says why this replica stopped sharing for good (Redis
	// holds another fingerprint key's check value); omitted while sharing.
	// The replica serves on its local state until it is restarted with the
	// cluster's fingerprint key.
	SharingStopped string `json:"sharing_stopped,omitempty"`
	// Trainer: this replica holds the training lease and publishes the
	// models the others adopt.
	Trainer bool `json:"trainer"`
}

// The values of ClusterStatus.Mode.
const (
	ClusterModeStandalone = "standalone"
	ClusterModeCluster    = "cluster"
)

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// Entry is a block or allow list entry. Secret values are fingerprints.
type Entry struct {
	Kind      string     `json:"kind"`
	Value     string     `json:"value"`
	Reason    string     `json:"reason"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// EntryRequest is the body of POST /v1/blocklist and /v1/allowlist.
type EntryRequest struct {
	Kind   string `json:"kind"`
	Value  string `json:"value"`
	TTL    string `json:"ttl"`
	Reason string `json:"reason"`
}

// Entries is the answer of GET /v1/blocklist and /v1/allowlist.
type Entries struct {
	Entries []Entry `json:"entries"`
}

// APIs is the answer of GET /v1/apis.
type APIs struct {
	APIs []observe.APIStats `json:"apis"`
}

// Attacks is the answer of GET /v1/attacks: a page, newest first, and the
// number of attacks the filter matches.
type Attacks struct {
	Attacks []*detect.Attack `json:"attacks"`
	Total   int              `json:"total"`
}

// FalsePositiveRequest is the body of POST /v1/attacks/{id}/false-positive
// (optional): how long the identity is allowed, "24h" by default, "0s" for
// not at all.
type FalsePositiveRequest struct {
	AllowFor string `json:"allow_for"`
}

// Decoys is the answer of GET /v1/decoys.
type Decoys struct {
	Decoys             []decoy.Stats `json:"decoys"`
	HoneytokensPlanted int64         `json:"honeytokens_planted"`
}

// Models is the answer of GET /v1/models. One model is a behaviour.ModelDoc
// (GET, PUT and POST …/import), changed with a behaviour.ModelUpdate.
type Models struct {
	Models []behaviour.ModelStatus `json:"models"`
}

// Model is one model (GET and PUT /v1/models/{api}, POST …/import, the
// export format): the engine's document and content inspection's part,
// its knobs and learned parameter profiles (inspection, absent when
// content inspection is not running).
type Model struct {
	*behaviour.ModelDoc
	Inspection *detect.ContentModelDoc `json:"inspection,omitempty"`
}

// ModelUpdate is PUT /v1/models/{api}'s body: the engine's update and
// content inspection's knobs.
type ModelUpdate struct {
	behaviour.ModelUpdate
	Inspection *detect.ContentKnobsUpdate `json:"inspection,omitempty"`
}

// Activity is the answer of GET /v1/apis/{api}/activity.
type Activity struct {
	API           string                  `json:"api"`
	Points        []observe.ActivityPoint `json:"points"`
	Since         time.Time               `json:"since"`
	Step          string                  `json:"step"`
	TopIdentities []observe.TopIdentity   `json:"top_identities"`
}

// Forensics is the answer of GET /v1/forensics/{kind}/{value}: what one
// identity did.
type Forensics struct {
	Attacks   []*detect.Attack `json:"attacks"`
	Details   ForensicsDetails `json:"details"`
	FirstSeen *time.Time       `json:"first_seen"`
	Kind      string           `json:"kind"`
	LastSeen  *time.Time       `json:"last_seen"`
	// Status is active, blocked or allowed.
	Status  string           `json:"status"`
	Summary ForensicsSummary `json:"summary"`
	Value   string           `json:"value"`
}

// ForensicsDetails are an identity's requests per hour and its counts.
type ForensicsDetails struct {
	// HourlyRequests counts requests per hour (unix hour → count).
	HourlyRequests map[int64]int64  `json:"hourly_requests"`
	Metrics        ForensicsMetrics `json:"metrics"`
}

// ForensicsMetrics count an identity's requests by API, IP, method and
// endpoint.
type ForensicsMetrics struct {
	APIs    map[string]int64 `json:"apis"`
	IPList  []ForensicsIP    `json:"ip_list"`
	Methods map[string]int64 `json:"methods"`
	URLs    map[string]int64 `json:"urls"`
}

// ForensicsSummary counts an identity's requests and attacks.
type ForensicsSummary struct {
	TotalAttacks  int   `json:"total_attacks"`
	TotalRequests int64 `json:"total_requests"`
}

// ForensicsIP is one IP of an identity.
type ForensicsIP struct {
	IP      string           `json:"ip"`
	Total   int64            `json:"total_requests"`
	Methods map[string]int64 `json:"methods"`
	URLs    map[string]int64 `json:"urls"`
	APIs    map[string]int64 `json:"apis"`
}
