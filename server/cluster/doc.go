// Package cluster shares Vigil's state between replicas through Redis
// (standalone or Redis Cluster). It starts only when redis.addrs is set;
// without it Vigil is a single node and nothing here runs.
//
// # Principles
//
// The request path never calls Redis. Every replica keeps a full local copy
// of what it enforces (lists, honeytokens); local changes are queued in a
// bounded outbox and written by a goroutine; changes of other replicas are
// read by another goroutine from a Redis Stream and applied locally. Redis
// down, slow or restarted empty changes nothing on the request path.
//
// # Keys (prefix p = redis.key_prefix, default "vigil:")
//
//	p+"runid"                   random id set (SET NX) at first use; a replica
//	                            that finds it changed or missing knows Redis lost
//	                            its data and re-seeds it from its local state
//	p+"fpcheck"                 hex HMAC-SHA256(fingerprint key, "vigil fingerprint
//	                            check v1"), SET NX; a replica whose value differs
//	                            refuses to start (ErrFingerprintMismatch)
//	p+"{shared}:events"         STREAM of changes, XADD MAXLEN ~ 100000, fields
//	                            k (set or event kind), o (put, del, ev), f (field),
//	                            v (value), r (replica id)
//	p+"{shared}:list:block"     HASH of the block list: field "kind:value",
//	p+"{shared}:list:allow"     value the entry's JSON (absolute expiry, reason,
//	                            attack id); the allow list likewise
//	p+"{shared}:list:block:tomb" HASH field → when it was deleted (unix ms,
//	                            Redis' clock), cleared by a put, kept 30 days: a
//	                            replica back with an entry deleted meanwhile drops it
//	p+"{shared}:honeytokens"    HASH fingerprint → honeytoken JSON (kind, API, path,
//	                            minted at, hit id): never the credential
//	p+"{shared}:decoy:hits"     HASH "api path" → the cluster's hits of a decoy
//	p+"{shared}:decoy:last"     HASH "api path" → its last hit, unix ms
//	p+"{shared}:attacks"        HASH attack id → the record's JSON (as GET
//	                            /v1/attacks/{id}); the newest MaxAttacks kept
//	p+"claim:{h}:<type>"        the attack id that claimed an attack: h is 16 hex
//	                            of SHA-256(api, identity kind, identity value);
//	                            SET NX GET PX (the block's duration, else 10 min);
//	                            records only detected claim p+"claim:{h}:<type>:detected"
//	p+"replicas"                ZSET replica id → last health round (unix ms):
//	                            Replicas() counts those seen within 3 rounds
//
// The shared hashes and the stream share the hash tag {shared}: one change
// is written to both by one script (EVALSHA), atomically, on Redis Cluster
// too. Expired entries are ignored when read and pruned by reconciles.
// Behaviour windows and models (flush.go, models.go) have their own keys,
// documented there; model updates travel on the events stream (Publish,
// OnEvent). Nothing secret is stored: secret identities are fingerprints,
// honeytokens are keyed by fingerprint, the key check is an HMAC.
//
// # Following changes
//
// At start, at every reconcile_interval and after Redis came back, a replica
// reads every shared hash (HGETALL) and the stream's last id in one
// pipeline, then follows the stream with XREAD BLOCK from that id (rueidis
// runs blocking commands on dedicated connections). Changes made by this
// replica (field r) are skipped; the others are applied to the local copy
// (enforced at once), then journaled locally (bbolt), never published
// again. A follower far behind that finds the stream trimmed past what it
// read reloads everything (vigil_redis_stream_gaps_total).
//
// Reconciling: the first load merges (local entries Redis lacks are
// published: a replica that ran alone brings its lists, honeytokens and
// attacks), except list entries deleted in the cluster after they were
// created (tombstones); later loads make the lists Redis' copy, except the
// fields changed locally since the load began. Two replicas changing one
// entry at the same instant may disagree until the next reconcile (Redis
// keeps the last write). Lag on one host: a Store on one replica is
// enforced on another in ~0.1 ms median, ~1 ms p99
// (BenchmarkBlockPropagation).
//
// # Attack records
//
// A record made here is claimed before it is published (SET NX GET on its
// claim key): when several replicas cross a threshold for one identity at
// once, the first claim wins and is published; the others drop their record
// and point their list entries to the winner's id (List.SetRewrite), so a
// false positive marked on any replica finds every entry. Decoy records are
// one request each and published unclaimed. An update (false positive) is
// published again. Each replica journals the cluster's records locally.
// Left per replica: the engine's OnAttack hooks (log line, webhook,
// metric) run on the replica that detected, the losers included; a loser's
// record stays in its bbolt journal (the journal has no delete). Decoy hit
// counts are summed over the replicas every health interval.
//
// # Redis failing
//
// A health round every second (SET NX + GET of the run id and of the
// fingerprint check, ZADD of the replica) sets vigil_redis_up and Status.
// Redis not answering at Open is no error: the Cluster starts down and
// connects when Redis answers. While Redis is down or slow, local changes
// wait in the outbox (redis.outbox_size, oldest dropped and counted);
// changes whose entry expired meanwhile are not replayed; the others are
// replayed in order when Redis answers again. A Redis restarted empty (its
// run id gone) is re-seeded by every replica from its local state (lists,
// honeytokens, decoy hits, attacks, and the OnReseed functions) before any
// replica loads from it, so an empty Redis never empties a replica.
//
// # Metrics
//
// vigil_redis_up, vigil_redis_errors_total{op}, vigil_redis_outbox_depth,
// vigil_redis_outbox_dropped_total, vigil_redis_outbox_expired_total,
// vigil_redis_propagation_seconds (stream entry time to local application),
// vigil_redis_events_applied_total{kind}, vigil_redis_reconciles_total,
// vigil_redis_reseeds_total, vigil_redis_attack_claims_total{outcome},
// vigil_redis_stream_gaps_total. The propagation lag compares the stream
// entry's id (Redis' clock) with this replica's clock.
//
// # Wiring (server/server.go)
//
//	c, err := cluster.Open(ctx, cluster.Options{Addrs: cfg.Redis.Addrs,
//	    Cluster: cfg.Redis.IsCluster(), Username: cfg.Redis.Username,
//	    Password: pw /* cfg.Redis.Password() */, TLS: tlsCfg /* cfg.Redis.TLSConfig() */,
//	    KeyPrefix: cfg.Redis.KeyPrefix, ReplicaID: cfg.Redis.EffectiveReplicaID(),
//	    FingerprintCheck: config.FingerprintCheck(fingerprintKey),
//	    ReconcileInterval: cfg.Redis.ReconcileInterval, OutboxSize: cfg.Redis.OutboxSize,
//	    MaxAttacks: cfg.Detection.MaxAttacks, Log: log})
//	// err wrapping ErrFingerprintMismatch: refuse to start. Redis down is no error.
//	registry.MustRegister(c.Collectors()...)
//	// in restore(), instead of l.SetJournal(s.store.ListJournal(name)) after the
//	// list was loaded from bbolt:
//	c.ShareList(name, l, s.store.ListJournal(name)) // "allow" and "block"
//	// after the trap's honeytokens and hits were restored, instead of
//	// s.trap.Journal = s.store:
//	c.ShareDecoys(s.trap, s.store)
//	// after the attacks were loaded into the engine's store, instead of
//	// as.SetJournal(s.store, onErr):
//	c.ShareAttacks(as, s.store, onErr, allow, block)
//	go c.Run(ctx) // until shutdown; Run closes the client when it ends
//	// a Cluster opened but never run: c.Close()
//	// /v1/status: c.Status(); behaviour.EngineConfig.Replicas: c.Replicas
package cluster
