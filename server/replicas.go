package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/cluster"
	"github.com/vigil-project/vigil/server/config"
)

// replicas is this Vigil's part in a cluster of replicas sharing Redis
// (redis.addrs): lists, honeytokens and decoy hits followed through Redis,
// behaviour windows of suspicious identities flushed and merged, one
// trainer whose models the others adopt. Nil without Redis: a single node.
// Nothing here runs on the request path.
type replicas struct {
	cluster *cluster.Cluster
	models  *cluster.Models
	flusher *cluster.Flusher
	cfg     config.RedisConfig
}

// openTimeout bounds the first checks of Redis at start: past it Vigil
// serves on its local state and connects when Redis answers.
const openTimeout = 5 * time.Second

// openReplicas connects to redis.addrs, or returns nil without them. A
// Redis that does not answer is no error (Vigil serves on its local state,
// degraded, and connects when it answers); a fingerprint key that differs
// from the cluster's is, and so is a password file or TLS setting that
// cannot be read.
func openReplicas(cfg *config.Config, rt *config.Runtime, log zerolog.Logger) (*replicas, error) {
	rc := cfg.Redis
	if !rc.Enabled() {
		return nil, nil
	}
	if _, err := rc.Password(); err != nil { // read again at every connection (a rotated Secret)
		return nil, err
	}
	tlsConfig, err := rc.TLSConfig()
	if err != nil {
		return nil, err
	}
	clog := log.With().Str("component", "cluster").Logger()
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	c, err := cluster.Open(ctx, cluster.Options{
		Addrs: rc.Addrs, Cluster: rc.IsCluster(), Username: rc.Username, PasswordFunc: rc.Password, TLS: tlsConfig,
		KeyPrefix: rc.KeyPrefix, ReplicaID: rc.EffectiveReplicaID(), FingerprintCheck: rt.FingerprintCheck,
		ReconcileInterval: rc.ReconcileInterval, OutboxSize: rc.OutboxSize, MaxAttacks: cfg.Detection.MaxAttacks, Log: clog,
	})
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return &replicas{cluster: c, models: cluster.NewModels(c, cluster.ModelOptions{Log: clog}), cfg: rc}, nil
}

// hooks ties the engine to the other replicas: it trains only while this
// replica holds the trainer lease, scales its training samples by the live
// replicas, and tells the others of model changes.
func (r *replicas) hooks(h config.EngineHooks) config.EngineHooks {
	if r == nil {
		return h
	}
	h.Trainer, h.Replicas, h.OnModelChange = r.models.IsTrainer, r.cluster.Replicas, r.models.Changed
	return h
}

// shareLists makes the lists' changes the cluster's: journaled locally,
// then written to Redis; other replicas' changes applied and journaled.
// Without Redis the lists are journaled locally only.
func (r *replicas) shareLists(s *Server, lists map[string]*detect.List) {
	for name, l := range lists {
		if r == nil {
			l.SetJournal(s.store.ListJournal(name))
			continue
		}
		r.cluster.ShareList(name, l, s.store.ListJournal(name))
	}
}

// shareAttacks makes the attack records the cluster's: one record per
// attack however many replicas see it (a claim in Redis), every replica's
// records listed by each. Without Redis they are journaled locally only.
func (r *replicas) shareAttacks(s *Server, as *detect.AttackStore, onError func(error), lists ...*detect.List) {
	if r == nil {
		as.SetJournal(s.store, onError)
		return
	}
	r.cluster.ShareAttacks(as, s.store, onError, lists...)
}

// start registers what the replica shares beside the lists (honeytokens,
// decoy hits) and its metrics; call it once the local state is restored.
func (r *replicas) start(s *Server) {
	if r == nil {
		return
	}
	r.cluster.ShareDecoys(s.trap, s.store)
	r.flusher = cluster.NewFlusher(r.cluster, s.engine, cluster.FlushOptions{
		Interval: r.cfg.FlushInterval, Log: s.log.With().Str("component", "cluster").Logger(),
	})
	s.metrics.reg.MustRegister(r.cluster.Collectors()...)
	s.metrics.reg.MustRegister(r.models.Collectors()...)
	s.metrics.reg.MustRegister(r.flusher.Collectors()...)
}

// run runs the link to Redis, the flusher and the trainer lease until ctx
// ends; the returned wait returns once they have stopped (the trainer
// lease released, the client closed).
func (r *replicas) run(ctx context.Context, s *Server) (wait func()) {
	if r == nil {
		return func() {}
	}
	var wg sync.WaitGroup
	clusterCtx, stopCluster := context.WithCancel(context.Background())
	wg.Go(func() { r.cluster.Run(clusterCtx) })
	var others sync.WaitGroup
	others.Go(func() { r.flusher.Run(ctx) })
	others.Go(func() { r.models.Run(ctx, s.engine) })
	return func() {
		others.Wait()
		// The trainer hands its lease over at once instead of letting it
		// lapse (a rollout would otherwise train nowhere for the lease
		// time); then the link closes.
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := r.models.Release(rctx); err != nil {
			s.log.Debug().Err(err).Msg("trainer lease not released; it lapses")
		}
		cancel()
		stopCluster()
		wg.Wait()
	}
}

// close closes a link opened but never run (New failed after it).
func (r *replicas) close() {
	if r != nil {
		r.cluster.Close()
	}
}

// status is /v1/status's cluster object; nil without Redis.
func (r *replicas) status() *adminapi.ClusterStatus {
	if r == nil {
		return nil
	}
	st := r.cluster.Status()
	cs := &adminapi.ClusterStatus{
		Mode: st.Mode, ReplicaID: st.ReplicaID, Replicas: st.Replicas, RedisUp: st.Up,
		Degraded: !st.Up || st.Error != "", DegradedSince: st.DownSince, Outbox: st.OutboxDepth,
		PropagationLagSeconds: st.PropagationLag.Seconds(), Trainer: r.models.IsTrainer(),
	}
	if st.Error != "" {
		cs.SharingStopped = st.Error
	}
	if r.flusher != nil {
		cs.LastFlush = r.flusher.LastFlush()
	}
	return cs
}
