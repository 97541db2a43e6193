// Package membership tells a cluster's nodes about each other: each node puts a
// heartbeat (its API address, when it started, how far it applied the replicated log)
// in a JetStream key-value bucket every second, whose entries expire, and Status joins
// the heartbeats with what the log's Raft group says of its replicas. It is what
// `obelisk client cluster status` shows; docs/RATIONALE.md ("Cluster membership:
// heartbeats in JetStream") says why not protoactor's cluster.
package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/obelisk-go/obelisk/events/replicated"
)

// Defaults of Options.
const (
	DefaultBucket   = "OBELISK_MEMBERS"
	DefaultInterval = time.Second
	// DefaultStaleAfter is how old a node's last heartbeat may be while it counts as
	// healthy: several missed beats, so that a loaded machine does not flap.
	DefaultStaleAfter = 5 * time.Second
	// DefaultForgetAfter is how long the bucket keeps a heartbeat: a node stopped for
	// longer is only listed if it holds a replica of the log.
	DefaultForgetAfter = 10 * time.Minute
)

// Beat is one node's heartbeat, the value of its key in the bucket.
type Beat struct {
	Node      string    `json:"node"`
	APIURL    string    `json:"api_url"`
	StartedAt time.Time `json:"started_at"`
	// Applied is the last log entry the node had applied when it beat.
	Applied uint64 `json:"applied"`
}

// Log is what membership needs of the node's replicated store.
type Log interface {
	LogStatus(ctx context.Context) (replicated.LogStatus, error)
	Applied() uint64
}

// Options configure Start.
type Options struct {
	JetStream jetstream.JetStream
	// Cluster is the cluster's name (shown), Node this node's (its key).
	Cluster, Node string
	// APIURL is where this node's API answers.
	APIURL string
	Log    Log
	// Replicas of the bucket: the log's, so that it outlives the nodes the log does.
	Replicas int
	// Bucket, Interval, StaleAfter and ForgetAfter: their Default... if zero.
	Bucket                            string
	Interval, StaleAfter, ForgetAfter time.Duration
	Logger                            *slog.Logger
}

// Heart beats for this node until Stop.
type Heart struct {
	opts    Options
	mu      sync.Mutex
	kv      jetstream.KeyValue // nil until bucket reached it
	started time.Time
	stop    context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

// Start puts this node's first heartbeat, creating the bucket if it does not exist, and
// goes on beating every Interval until Stop. A bucket that cannot be reached yet (its
// Raft group electing a leader) is logged and tried again at the next beat: the server
// serves without its heartbeat rather than not at all.
func Start(ctx context.Context, opts Options) (*Heart, error) {
	if opts.JetStream == nil || opts.Log == nil || opts.Node == "" {
		return nil, errors.New("start heartbeats: JetStream, Log and Node are required")
	}
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	if opts.ForgetAfter <= 0 {
		opts.ForgetAfter = DefaultForgetAfter
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Heart{opts: opts, started: time.Now().UTC(), done: make(chan struct{})}
	if err := h.beat(ctx); err != nil {
		opts.Logger.Warn("cluster heartbeat not put: trying again in a moment", "err", err)
	}
	bctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go h.run(bctx)
	return h, nil
}

// bucket returns the heartbeats' bucket, creating it (or binding to it) the first time.
func (h *Heart) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kv != nil {
		return h.kv, nil
	}
	// In memory: a heartbeat is worth nothing after a restart of every server.
	kv, err := h.opts.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: h.opts.Bucket, Description: "obelisk cluster members' heartbeats", History: 1,
		TTL: h.opts.ForgetAfter, Storage: jetstream.MemoryStorage, Replicas: h.opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("heartbeats' bucket %s: %w", h.opts.Bucket, err)
	}
	h.kv = kv
	return kv, nil
}

func (h *Heart) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := h.beat(ctx); err != nil && ctx.Err() == nil {
			// The others see the heartbeat age: nothing more to do than say it here.
			h.opts.Logger.Warn("cluster heartbeat not put", "err", err)
		}
	}
}

func (h *Heart) beat(ctx context.Context) error {
	b, err := json.Marshal(Beat{Node: h.opts.Node, APIURL: h.opts.APIURL, StartedAt: h.started, Applied: h.opts.Log.Applied()})
	if err != nil {
		return fmt.Errorf("heartbeat of %s: %w", h.opts.Node, err)
	}
	pctx, cancel := context.WithTimeout(ctx, max(h.opts.Interval, 2*time.Second))
	defer cancel()
	kv, err := h.bucket(pctx)
	if err != nil {
		return err
	}
	if _, err := kv.Put(pctx, h.opts.Node, b); err != nil {
		return fmt.Errorf("heartbeat of %s: %w", h.opts.Node, err)
	}
	return nil
}

// Stop stops beating and removes this node's heartbeat: the others see it left rather
// than wait for its heartbeat to go stale.
func (h *Heart) Stop(ctx context.Context) {
	h.once.Do(func() {
		h.stop()
		<-h.done
		h.mu.Lock()
		kv := h.kv
		h.mu.Unlock()
		if kv == nil {
			return // never put
		}
		if err := kv.Delete(ctx, h.opts.Node); err != nil {
			h.opts.Logger.Warn("cluster heartbeat not removed", "err", err)
		}
	})
}

// Member is one node as Status sees it.
type Member struct {
	Name string
	// Self: the node that answered.
	Self bool
	// APIURL, StartedAt and LastSeen are from its last heartbeat (zero without one).
	APIURL    string
	StartedAt time.Time
	LastSeen  time.Time
	// Applied is the last log entry it applied: this node's now, another's as of its
	// last heartbeat.
	Applied uint64
	// Replica is what the log's Raft leader says of the node's replica, nil if it holds
	// none (or connects to an external NATS whose servers are named otherwise).
	Replica *replicated.Replica
	// Healthy: a fresh heartbeat, and its replica (if any) not offline; Problem says
	// what is wrong otherwise.
	Healthy bool
	Problem string
}

// Status is the cluster as one node sees it.
type Status struct {
	Cluster, Self string
	// Log is the replicated log's end and leader, as its leader answered.
	Log     replicated.LogStatus
	Members []Member
	// Errors say what could not be read (the log's state, the heartbeats): the members
	// are what the rest says.
	Errors []string
}

// Status lists the members: every node with a heartbeat in the bucket or a replica of
// the log, by name. What cannot be read within a few seconds (the log's leader or the
// bucket's being elected after a node died) is said in Status.Errors, and the rest is
// shown: a status is most wanted when something is wrong.
func (h *Heart) Status(ctx context.Context) (Status, error) {
	lctx, cancel := context.WithTimeout(ctx, readTimeout)
	ls, lerr := h.opts.Log.LogStatus(lctx)
	cancel()
	bctx, cancel := context.WithTimeout(ctx, readTimeout)
	beats, berr := h.beats(bctx)
	cancel()
	if lerr != nil && berr != nil {
		return Status{}, fmt.Errorf("cluster status: %w", errors.Join(lerr, berr))
	}
	out := Status{Cluster: h.opts.Cluster, Self: h.opts.Node, Log: ls}
	if lerr != nil {
		out.Errors = append(out.Errors, lerr.Error())
	}
	if berr != nil {
		out.Errors = append(out.Errors, berr.Error())
	}
	now := time.Now()
	byName := map[string]*Member{}
	member := func(name string) *Member {
		if m, ok := byName[name]; ok {
			return m
		}
		m := &Member{Name: name, Self: name == h.opts.Node}
		byName[name] = m
		return m
	}
	for _, b := range beats {
		m := member(b.beat.Node)
		m.APIURL, m.StartedAt, m.LastSeen, m.Applied = b.beat.APIURL, b.beat.StartedAt, b.at, b.beat.Applied
	}
	for _, r := range ls.Replicas {
		member(r.Name).Replica = &r
	}
	self := member(h.opts.Node)
	self.Applied = h.opts.Log.Applied()
	self.APIURL, self.StartedAt = h.opts.APIURL, h.started
	if berr != nil {
		self.LastSeen = now // its own heartbeat could not be read: it is alive, answering
	}
	for _, m := range byName {
		switch age := now.Sub(m.LastSeen); {
		case berr != nil && m.LastSeen.IsZero():
			m.Problem = "heartbeats unreadable"
		case m.LastSeen.IsZero():
			m.Problem = "no heartbeat"
		case age > h.opts.StaleAfter:
			m.Problem = fmt.Sprintf("no heartbeat for %v", age.Round(time.Second))
		case m.Replica != nil && m.Replica.Offline:
			m.Problem = "log replica offline"
		}
		m.Healthy = m.Problem == ""
		out.Members = append(out.Members, *m)
	}
	slices.SortFunc(out.Members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// readTimeout bounds each read of Status: longer than an election of a Raft leader on a
// loaded machine usually takes, short enough for a command someone waits for.
const readTimeout = 3 * time.Second

type storedBeat struct {
	beat Beat
	at   time.Time // when the bucket stored it
}

// beats reads every heartbeat in the bucket.
func (h *Heart) beats(ctx context.Context) ([]storedBeat, error) {
	kv, err := h.bucket(ctx)
	if err != nil {
		return nil, fmt.Errorf("read heartbeats: %w", err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read heartbeats: %w", err)
	}
	defer w.Stop()
	var out []storedBeat
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read heartbeats: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return out, nil
			}
			if e == nil { // every stored value delivered
				return out, nil
			}
			var b Beat
			if err := json.Unmarshal(e.Value(), &b); err != nil {
				h.opts.Logger.Warn("cluster heartbeat unreadable", "key", e.Key(), "err", err)
				continue
			}
			out = append(out, storedBeat{beat: b, at: e.Created()})
		}
	}
}
