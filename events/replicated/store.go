// Package replicated is the event store of a cluster of nodes: a replicated, totally
// ordered log of transactions on a NATS JetStream stream (Raft-replicated, R3 in a
// three-server cluster), which every node applies, in log order, to its own PebbleStore.
//
// Committing a Tx publishes it to the stream and waits until this node has applied the
// stream sequence it got: its outcome (the new states, or a version conflict, or any
// other refusal) is what the one fold (events/tx.go) decided at that place in the log,
// the same on every node since every node folds the same prefix. Two nodes that lock the
// same execution both publish; the first in the log wins, the second gets the conflict
// error a single PebbleStore would give it. Reads are served by the local PebbleStore,
// which is the log's projection on this node: a node reads its own writes (Commit
// returns after the local apply), and another node's after it applied them.
//
// What stays on the node (not in the log): workflow memory snapshots (a cache that
// spares a replay; a blob through Raft would be waste), the sweeping of the result
// cache (CacheGet already ignores expired entries; the sweep only frees space) and
// compactions. docs/RATIONALE.md ("A cluster's store: one replicated log") says why.
package replicated

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Defaults of Options.
const (
	DefaultStream         = "OBELISK_LOG"
	DefaultPublishTimeout = 5 * time.Second
	// DefaultDuplicateWindow is how long the stream remembers a message ID: a publish
	// retried within it is stored once.
	DefaultDuplicateWindow = 2 * time.Minute
)

// ErrTooLarge is returned for a Tx whose entry exceeds the largest message the NATS
// servers accept (their max_payload).
var ErrTooLarge = errors.New("transaction too large for the replicated log")

// Options configure a Store.
type Options struct {
	// Conn is a connection to one of the cluster's JetStream servers (the node's own,
	// natsnode.Node.Connect). The Store does not close it.
	Conn *nats.Conn
	// Stream is the stream's name (DefaultStream if empty); its one subject is
	// Stream+".tx". Every node of a cluster names the same stream.
	Stream string
	// Replicas is the stream's replication factor: 3 in a three-server cluster, 1 for a
	// single server (0: 1).
	Replicas int
	// PublishTimeout bounds one attempt to publish an entry (0: DefaultPublishTimeout);
	// a failed attempt is retried, with the same message ID, until the Commit's ctx ends.
	PublishTimeout time.Duration
	// Pebble configures the local store; MaxLogsPerExecution must be the same on every
	// node (it decides which log lines are kept).
	Pebble events.Options
	Logger *slog.Logger
}

// Store is a node's view of the replicated store. It implements events.Store: reads are
// the local PebbleStore's, writes go through the log.
type Store struct {
	*events.PebbleStore // the local projection: every read

	opts    Options
	js      jetstream.JetStream
	subject string
	maxSize int
	cons    jetstream.ConsumeContext

	mu      sync.Mutex
	waiters map[string]chan outcome // by message ID, the Commits of this node waiting

	items    chan item // consumer -> resolver, in log order
	closing  chan struct{}
	ctx      context.Context // ends at Close: the applier's work
	cancel   context.CancelFunc
	resolved chan struct{} // the resolver stopped

	failed   chan struct{}
	failErr  error
	failOnce sync.Once

	applied   atomic.Uint64 // entries applied since Open
	closeOnce sync.Once
	closeErr  error
}

var _ events.Store = (*Store)(nil)

type outcome struct {
	states  map[string]*pb.ExecutionState
	deleted events.Deleted
	err     error
}

// item is one log entry on its way through the applier: a Tx queued in the local
// store, or a deletion to run.
type item struct {
	seq      uint64
	msgID    string
	applying *events.Applying
	roots    []string      // a deletion
	done     chan struct{} // closed once the deletion ran
}

// Open opens the local store in dir, creates the stream if it does not exist, and starts
// applying the log after the last entry the local store applied. It returns without
// waiting for the local store to catch up (see WaitApplied).
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.Conn == nil {
		return nil, errors.New("open replicated store: no NATS connection")
	}
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.PublishTimeout == 0 {
		opts.PublishTimeout = DefaultPublishTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Pebble.Logger == nil {
		opts.Pebble.Logger = opts.Logger
	}
	js, err := jetstream.New(opts.Conn)
	if err != nil {
		return nil, fmt.Errorf("open replicated store: %w", err)
	}
	s := &Store{
		opts: opts, js: js, subject: opts.Stream + ".tx", maxSize: int(opts.Conn.MaxPayload()),
		waiters: map[string]chan outcome{}, items: make(chan item, 1024), closing: make(chan struct{}),
		resolved: make(chan struct{}), failed: make(chan struct{}),
	}
	if err := s.ensureStream(ctx); err != nil {
		return nil, err
	}
	ps, err := events.Open(dir, opts.Pebble)
	if err != nil {
		return nil, err
	}
	s.PebbleStore = ps
	last, err := ps.LastApplied()
	if err != nil {
		ps.Close()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	cc := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if last > 0 {
		cc = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: last + 1}
	}
	cons, err := js.OrderedConsumer(ctx, opts.Stream, cc)
	if err != nil {
		ps.Close()
		return nil, fmt.Errorf("open replicated store: consume %s after %d: %w", opts.Stream, last, err)
	}
	go s.resolve()
	go func() {
		select {
		case <-ps.Failed():
			s.fail(ps.Err())
		case <-s.closing:
		}
	}()
	s.cons, err = cons.Consume(s.consume)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open replicated store: consume %s after %d: %w", opts.Stream, last, err)
	}
	return s, nil
}

// ensureStream creates the stream, or checks the existing one is replicated as asked.
// Retried while the cluster has no JetStream leader yet (its nodes starting).
func (s *Store) ensureStream(ctx context.Context) error {
	cfg := jetstream.StreamConfig{
		Name: s.opts.Stream, Subjects: []string{s.subject}, Storage: jetstream.FileStorage,
		Replicas: s.opts.Replicas, Duplicates: DefaultDuplicateWindow,
		// The log is the store: no entry may be dropped while a node may need it.
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew,
	}
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := s.js.Stream(actx, s.opts.Stream)
		cancel()
		if err == nil {
			if r := info.CachedInfo().Config.Replicas; r != s.opts.Replicas {
				return fmt.Errorf("open replicated store: stream %s has %d replicas, %d asked", s.opts.Stream, r, s.opts.Replicas)
			}
			return nil
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = s.js.CreateStream(actx, cfg)
			cancel()
			if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue
			}
		}
		s.opts.Logger.Debug("replicated store: stream not ready", "stream", s.opts.Stream, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("open replicated store: stream %s: %w (last: %v)", s.opts.Stream, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Commit publishes what of tx is replicated and returns its outcome once this node
// applied it; its snapshots are then stored locally. A Tx of snapshots alone is stored
// locally only.
func (s *Store) Commit(ctx context.Context, tx *events.Tx) (map[string]*pb.ExecutionState, error) {
	if !replicatedPart(tx) {
		return s.PebbleStore.Commit(ctx, tx)
	}
	b, err := encodeTx(tx)
	if err != nil {
		return nil, err
	}
	o := s.publish(ctx, b)
	if o.err != nil || len(tx.Snapshots) == 0 {
		return o.states, o.err
	}
	// The rest is committed: a snapshot that cannot be stored costs a replay later, not
	// the commit.
	if _, err := s.PebbleStore.Commit(ctx, &events.Tx{Snapshots: tx.Snapshots}); err != nil {
		s.opts.Logger.Warn("replicated store: snapshot not stored", "err", err)
	}
	return o.states, nil
}

// DeleteTrees deletes finished trees on every node: the deletion is an entry of the log,
// which each node runs, in log order, on its local store.
func (s *Store) DeleteTrees(ctx context.Context, roots []string) (events.Deleted, error) {
	b, err := encodeDeleteTrees(roots)
	if err != nil {
		return events.Deleted{}, err
	}
	o := s.publish(ctx, b)
	return o.deleted, o.err
}

// publish appends entry b to the log and waits until this node applied it.
func (s *Store) publish(ctx context.Context, b []byte) outcome {
	if err := s.Err(); err != nil {
		return outcome{err: err}
	}
	if len(b) > s.maxSize {
		return outcome{err: fmt.Errorf("commit: the entry is %d bytes, the log takes at most %d (NATS max_payload): %w", len(b), s.maxSize, ErrTooLarge)}
	}
	id := nuid.Next()
	ch := make(chan outcome, 1)
	s.mu.Lock()
	s.waiters[id] = ch
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.waiters, id)
		s.mu.Unlock()
	}
	msg := &nats.Msg{Subject: s.subject, Data: b}
	var seq uint64
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, s.opts.PublishTimeout)
		ack, err := s.js.PublishMsg(pctx, msg, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			seq = ack.Sequence
			break
		}
		// The same message ID: a publish that did land is stored once (the stream's
		// duplicate window), and its entry is applied and answered all the same.
		s.opts.Logger.Debug("replicated store: publish failed, retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			forget()
			return outcome{err: fmt.Errorf("commit: publish to %s (%d attempts, the entry may still be applied): %w", s.subject, attempt, errors.Join(ctx.Err(), err))}
		case <-s.closing:
			forget()
			return outcome{err: events.ErrClosed}
		case <-time.After(100 * time.Millisecond):
		}
	}
	select {
	case o := <-ch:
		return o
	case <-ctx.Done():
		forget()
		return outcome{err: fmt.Errorf("commit: entry %d of %s is in the log but not applied on this node yet: %w", seq, s.subject, ctx.Err())}
	case <-s.closing:
		forget()
		return outcome{err: events.ErrClosed}
	case <-s.failed:
		forget()
		return outcome{err: s.Err()}
	}
}

// consume takes the log's entries in order (the ordered consumer delivers each once, in
// sequence, re-creating itself on a gap) and queues them for the resolver.
func (s *Store) consume(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		s.fail(fmt.Errorf("apply the log: entry metadata: %w", err))
		return
	}
	seq := md.Sequence.Stream
	var e pb.LogEntry
	if err := proto.Unmarshal(msg.Data(), &e); err != nil {
		// An entry this node cannot read: applying the ones after it would fork this
		// node's state from the others'.
		s.fail(fmt.Errorf("apply the log: decode entry %d: %w", seq, err))
		return
	}
	it := item{seq: seq, msgID: msg.Headers().Get(jetstream.MsgIDHeader)}
	switch k := e.Kind.(type) {
	case *pb.LogEntry_Tx:
		if s.Err() != nil {
			return
		}
		it.applying, err = s.PebbleStore.ApplyLogged(s.ctx, seq, decodeTx(k.Tx))
		if err != nil {
			if s.ctx.Err() == nil {
				s.fail(err)
			}
			return
		}
	case *pb.LogEntry_DeleteTrees:
		it.roots, it.done = k.DeleteTrees.Roots, make(chan struct{})
	default:
		s.fail(fmt.Errorf("apply the log: entry %d of an unknown kind (a newer node wrote it?)", seq))
		return
	}
	select {
	case s.items <- it:
	case <-s.closing:
		return
	}
	if it.done != nil {
		// Nothing after a deletion is queued before it ran: what it deletes is decided
		// at its place in the log.
		select {
		case <-it.done:
		case <-s.closing:
		}
	}
}

// resolve waits for each entry's outcome, in log order, and answers this node's Commit
// that published it, if any.
func (s *Store) resolve() {
	defer close(s.resolved)
	for {
		var it item
		select {
		case it = <-s.items:
		case <-s.closing:
			return
		}
		var o outcome
		if it.applying != nil {
			o.states, o.err = it.applying.Wait()
		} else {
			o.deleted, o.err = s.PebbleStore.DeleteTrees(s.ctx, it.roots)
			if o.err == nil {
				o.err = s.PebbleStore.RecordApplied(s.ctx, it.seq)
			}
			close(it.done)
		}
		switch {
		case errors.Is(o.err, events.ErrAlreadyApplied):
			continue // delivered again after a reset of the consumer
		case errors.Is(o.err, events.ErrFailed):
			s.fail(o.err)
		case it.applying == nil && o.err != nil && s.ctx.Err() == nil:
			// A deletion is not a fold: its error is this node's, not the log's.
			s.fail(fmt.Errorf("apply the log: delete trees (entry %d): %w", it.seq, o.err))
		}
		s.applied.Add(1)
		s.mu.Lock()
		ch := s.waiters[it.msgID]
		delete(s.waiters, it.msgID)
		s.mu.Unlock()
		if ch != nil {
			ch <- o
		}
	}
}

// AppliedSinceOpen returns how many log entries this Store applied since it was opened.
func (s *Store) AppliedSinceOpen() uint64 { return s.applied.Load() }

// WaitApplied waits until this node applied the log up to its last entry as of the
// call: reads then see every commit acknowledged before it, on any node.
func (s *Store) WaitApplied(ctx context.Context) error {
	info, err := s.js.Stream(ctx, s.opts.Stream)
	if err != nil {
		return fmt.Errorf("wait applied: %w", err)
	}
	want := info.CachedInfo().State.LastSeq
	for {
		got, err := s.PebbleStore.LastApplied()
		if err != nil {
			return err
		}
		if got >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait applied: at %d of %d: %w", got, want, ctx.Err())
		case <-s.failed:
			return s.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Failed is closed when this node can no longer apply the log (its local store failed,
// or it met an entry it cannot apply); Err says why.
func (s *Store) Failed() <-chan struct{} { return s.failed }

// Err returns the store's failure, nil while it has not failed.
func (s *Store) Err() error {
	select {
	case <-s.failed:
		return s.failErr
	default:
		return nil
	}
}

func (s *Store) fail(err error) {
	s.failOnce.Do(func() {
		if !errors.Is(err, events.ErrFailed) {
			err = &events.FailedError{Dir: "replicated log " + s.opts.Stream, Err: err}
		}
		s.failErr = err
		s.opts.Logger.Error("replicated store failed: applying no further entry", "err", err)
		close(s.failed)
	})
}

// Close stops applying the log and closes the local store. Commits waiting fail with
// events.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		if s.cons != nil {
			s.cons.Stop()
		}
		s.cancel()
		<-s.resolved
		s.closeErr = s.PebbleStore.Close()
	})
	return s.closeErr
}
