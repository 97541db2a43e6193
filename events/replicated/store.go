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
	// PublishTimeout bounds one attempt to publish an entry (0: DefaultPublishTimeout).
	// A failed attempt is retried, with the same message ID, for half the stream's
	// duplicate window (a minute by default), and then the store fails: a retry after
	// the window could store the entry twice, had an earlier attempt landed.
	PublishTimeout time.Duration
	// Pebble configures the local store (NoSync is set: see Open); MaxLogsPerExecution must be the same on every
	// node (it decides which log lines are kept).
	Pebble events.Options
	Logger *slog.Logger
}

// Store is a node's view of the replicated store. It implements events.Store: reads are
// the local PebbleStore's, writes go through the log.
type Store struct {
	*events.PebbleStore // the local projection: every read

	opts     Options
	retryFor time.Duration // how long a publish is retried: half the duplicate window
	js       jetstream.JetStream
	subject  string
	maxSize  int

	mu      sync.Mutex
	waiters map[string]chan outcome // by Tx ID, the Commits of this node waiting

	queue    chan queued // Commit -> publishers
	pubs     sync.WaitGroup
	items    chan item // consumer -> resolver, in log order
	closing  chan struct{}
	ctx      context.Context // ends at Close: the applier's work
	cancel   context.CancelFunc
	resolved chan struct{} // the resolver stopped

	failed   chan struct{}
	failErr  error
	failOnce sync.Once

	applied    atomic.Uint64 // Txs and deletions applied since Open
	appliedSeq atomic.Uint64 // the last entry applied whole
	openedAt   uint64        // the last position applied before Open
	consumer   consumer      // what takes the log's entries (consumer.go)
	closeOnce  sync.Once
	closeErr   error
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
	seq      uint64 // the entry's
	id       string // the Tx's, or the deletion's message ID
	applying *events.Applying
	roots    []string      // a deletion
	done     chan struct{} // closed once the deletion ran
	last     bool          // the entry's last item
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
	// The log is what is durable; the local store is its projection. After a crash,
	// Pebble (unsynced) recovers a prefix of its batches, each holding the last entry it
	// applied (events/applied.go), and the node applies the log again from there.
	opts.Pebble.NoSync = true
	if opts.Pebble.Logger == nil {
		opts.Pebble.Logger = opts.Logger
	}
	js, err := jetstream.New(opts.Conn)
	if err != nil {
		return nil, fmt.Errorf("open replicated store: %w", err)
	}
	s := &Store{
		opts: opts, js: js, subject: opts.Stream + ".tx", maxSize: int(opts.Conn.MaxPayload()),
		waiters: map[string]chan outcome{}, queue: make(chan queued, 1024), items: make(chan item, 1024), closing: make(chan struct{}),
		resolved: make(chan struct{}), failed: make(chan struct{}),
	}
	info, err := s.ensureStream(ctx)
	if err != nil {
		return nil, err
	}
	s.retryFor = info.Config.Duplicates / 2
	if s.retryFor <= 0 {
		s.retryFor = DefaultDuplicateWindow / 2 // the server's default window
	}
	ps, err := events.Open(dir, opts.Pebble)
	if err != nil {
		return nil, err
	}
	s.PebbleStore = ps
	last, err := ps.LastApplied()
	if err == nil {
		err = s.checkStream(ctx, info, last)
	}
	if err != nil {
		ps.Close()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.openedAt = last
	if last > 0 {
		// From the entry of the last Tx applied: the writer refuses those of its Txs
		// applied already (events.ErrAlreadyApplied), and applies the rest.
		s.appliedSeq.Store(last>>16 - 1)
		s.consumer.consumed = last>>16 - 1
	}
	if err := s.startConsumer(ctx); err != nil {
		// The stream is there (ensureStream): the watch of the consumer starts another
		// once the stream answers again.
		opts.Logger.Warn("replicated store: starting the log's consumer", "after", last, "err", err)
	}
	go s.resolve()
	s.pubs.Add(publishers)
	for range publishers {
		go s.publisher()
	}
	go func() {
		select {
		case <-ps.Failed():
			s.fail(ps.Err())
		case <-s.closing:
		}
	}()
	go s.watchConsumer()
	return s, nil
}

// streamID is a stream's identity: its creation time, which a stream deleted and
// created again under the same name does not keep.
func streamID(info *jetstream.StreamInfo) string {
	return info.Created.UTC().Format(time.RFC3339Nano)
}

// checkStream refuses a stream this node's local store, at position last, cannot go on
// applying: another stream than the one it applied (deleted and created again), one
// that lost entries (ending before the last one applied, or no longer holding the entry
// to resume at), since the node would skip entries the others applied and fork from
// them. A store that applied nothing yet is bound to the stream.
func (s *Store) checkStream(ctx context.Context, info *jetstream.StreamInfo, last uint64) error {
	id := streamID(info)
	had, err := s.PebbleStore.LogID()
	if err != nil {
		return fmt.Errorf("open replicated store: %w", err)
	}
	st := info.State
	// The entry the consumer resumes at: that of the last position applied, which
	// may have been applied in part.
	entry := max(last>>16, 1)
	switch {
	case last>>16 > st.LastSeq:
		return fmt.Errorf("open replicated store: the local store applied stream %s up to entry %d, the stream ends at %d (entries lost?)", s.opts.Stream, last>>16, st.LastSeq)
	case st.FirstSeq > entry:
		return fmt.Errorf("open replicated store: the local store resumes stream %s at entry %d, the stream starts at %d (entries removed?)", s.opts.Stream, entry, st.FirstSeq)
	case had != "" && had != id:
		return fmt.Errorf("open replicated store: the local store applied stream %s created %s, the stream now is created %s (deleted and created again?): refusing to apply it", s.opts.Stream, had, id)
	}
	if had == "" {
		return s.PebbleStore.SetLogID(ctx, id)
	}
	return nil
}

// ensureStream creates the stream, or checks the existing one is configured as asked,
// and returns its info. Retried while the cluster has no JetStream leader yet (its nodes
// starting).
func (s *Store) ensureStream(ctx context.Context) (*jetstream.StreamInfo, error) {
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
			ci := info.CachedInfo()
			if r := ci.Config.Replicas; r != s.opts.Replicas {
				return nil, fmt.Errorf("open replicated store: stream %s has %d replicas, %d asked", s.opts.Stream, r, s.opts.Replicas)
			}
			if err := keepsEveryEntry(ci.Config); err != nil {
				return nil, fmt.Errorf("open replicated store: stream %s: %w", s.opts.Stream, err)
			}
			return ci, nil
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
			return nil, fmt.Errorf("open replicated store: stream %s: %w (last: %v)", s.opts.Stream, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// keepsEveryEntry refuses a stream configured (by an operator, or another version) to
// drop entries: the log is the store, and a node that misses an entry forks.
func keepsEveryEntry(c jetstream.StreamConfig) error {
	switch {
	case c.Retention != jetstream.LimitsPolicy:
		return fmt.Errorf("retention %v, want limits (an entry is kept until every node applied it)", c.Retention)
	case c.Discard != jetstream.DiscardNew:
		return fmt.Errorf("discard %v, want new (a full stream refuses an entry rather than drop an old one)", c.Discard)
	case c.MaxMsgs > 0 || c.MaxBytes > 0 || c.MaxAge > 0 || c.MaxMsgsPerSubject > 0:
		return fmt.Errorf("limits set (max msgs %d, bytes %d, age %v, msgs per subject %d), which drop entries", c.MaxMsgs, c.MaxBytes, c.MaxAge, c.MaxMsgsPerSubject)
	}
	return nil
}

// Commit publishes what of tx is replicated and returns its outcome once this node
// applied it; its snapshots are then stored locally. A Tx of snapshots alone is stored
// locally only. ctx bounds the wait for a publisher only: a Tx handed to one may be in
// the log, and Commit returns its verdict (or the store's failure) whatever ctx says.
func (s *Store) Commit(ctx context.Context, tx *events.Tx) (map[string]*pb.ExecutionState, error) {
	if !replicatedPart(tx) {
		return s.PebbleStore.Commit(ctx, tx)
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	m := encodeTx(tx)
	m.Id = nuid.Next()
	size := proto.Size(m)
	if size > s.maxSize-entryOverhead {
		return nil, fmt.Errorf("commit: the transaction takes %d bytes, the log at most %d (NATS max_payload less %d): %w", size, s.maxSize-entryOverhead, entryOverhead, ErrTooLarge)
	}
	ch := s.wait(m.Id)
	select {
	case s.queue <- queued{tx: m, size: size}:
	case <-ctx.Done():
		s.forget(m.Id)
		return nil, fmt.Errorf("commit: %w", ctx.Err())
	case <-s.closing:
		return nil, events.ErrClosed
	}
	// Handed to a publisher, the Tx may be in the log whatever ctx says: its verdict is
	// the answer (the publisher gives up within the duplicate window, failing the store).
	o := s.await(m.Id, ch)
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
	if err := s.Err(); err != nil {
		return events.Deleted{}, err
	}
	b, err := encodeDeleteTrees(roots)
	if err != nil {
		return events.Deleted{}, err
	}
	if len(b) > s.maxSize {
		return events.Deleted{}, fmt.Errorf("delete %d trees: the entry takes %d bytes, the log at most %d: %w", len(roots), len(b), s.maxSize, ErrTooLarge)
	}
	id := nuid.Next()
	ch := s.wait(id)
	if err := s.publish(ctx, b, id); err != nil {
		s.forget(id)
		return events.Deleted{}, fmt.Errorf("delete %d trees: %w", len(roots), err)
	}
	o := s.await(id, ch) // in the log: it runs whatever ctx says
	return o.deleted, o.err
}

// entryOverhead is room left in an entry for its framing and headers.
const entryOverhead = 1 << 10

// maxBatch bounds the Txs of one entry (a Tx's position keeps its index in 16 bits).
const maxBatch = 512

// publishers is how many entries a node may have in flight at once: a Commit arriving
// while they are all busy waits for one, and goes in its batch with the others that
// arrived meanwhile (the group commit of the log).
const publishers = 4

// queued is a Tx waiting for a publisher.
type queued struct {
	tx   *pb.LogTx
	size int
}

// publisher publishes the queued Txs, as many at once as fit in one entry.
func (s *Store) publisher() {
	defer s.pubs.Done()
	var carry *queued
	for {
		var first queued
		if carry != nil {
			first, carry = *carry, nil
		} else {
			select {
			case first = <-s.queue:
			case <-s.closing:
				return
			}
		}
		txs, size := []*pb.LogTx{first.tx}, first.size
	drain:
		for len(txs) < maxBatch {
			select {
			case q := <-s.queue:
				if size+q.size+16 > s.maxSize-entryOverhead {
					carry = &q
					break drain
				}
				txs, size = append(txs, q.tx), size+q.size+16
			default:
				break drain
			}
		}
		b, err := encodeBatch(txs)
		if err == nil {
			err = s.publish(s.ctx, b, nuid.Next())
		}
		if err != nil && s.ctx.Err() == nil {
			s.fail(err)
		}
	}
}

// publish appends entry b to the log under message ID id, retried (the same ID: a
// publish that did land is stored once, within the stream's duplicate window) until it
// is acknowledged or ctx ends. It gives up well within the duplicate window, which
// fails the store: the entry may have landed, and another attempt could store it twice.
func (s *Store) publish(ctx context.Context, b []byte, id string) error {
	msg := &nats.Msg{Subject: s.subject, Data: b}
	giveUp := time.Now().Add(s.retryFor)
	for attempt := 1; ; attempt++ {
		deadline := time.Now().Add(s.opts.PublishTimeout)
		if giveUp.Before(deadline) {
			deadline = giveUp
		}
		pctx, cancel := context.WithDeadline(ctx, deadline)
		_, err := s.js.PublishMsg(pctx, msg, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return nil
		}
		if !time.Now().Before(giveUp) {
			err = fmt.Errorf("publish to %s: no acknowledgement in %v (%d attempts; half the stream's duplicate window, after which a retry could store the entry twice): %w", s.subject, s.retryFor, attempt, err)
			s.fail(err)
			return err
		}
		s.opts.Logger.Debug("replicated store: publish failed, retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish to %s (%d attempts, the entry may still be applied): %w", s.subject, attempt, errors.Join(ctx.Err(), err))
		case <-s.closing:
			return events.ErrClosed
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wait registers a waiter for the outcome of the Tx or entry id.
func (s *Store) wait(id string) chan outcome {
	ch := make(chan outcome, 1)
	s.mu.Lock()
	s.waiters[id] = ch
	s.mu.Unlock()
	return ch
}

func (s *Store) forget(id string) {
	s.mu.Lock()
	delete(s.waiters, id)
	s.mu.Unlock()
}

// await waits for the outcome of id, on ch, until the store closes or fails.
func (s *Store) await(id string, ch chan outcome) outcome {
	select {
	case o := <-ch:
		return o
	case <-s.closing:
		s.forget(id)
		return outcome{err: events.ErrClosed}
	case <-s.failed:
		s.forget(id)
		return outcome{err: s.Err()}
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
		switch {
		case it.applying != nil:
			o.states, o.err = it.applying.Wait()
		case it.done != nil:
			o.deleted, o.err = s.PebbleStore.DeleteTrees(s.ctx, it.roots)
			if o.err == nil {
				o.err = s.PebbleStore.RecordApplied(s.ctx, it.seq<<16|0xffff)
			}
			close(it.done)
			if o.err != nil && s.ctx.Err() == nil {
				// A deletion is not a fold: its error is this node's, not the log's.
				s.fail(fmt.Errorf("apply the log: delete trees (entry %d): %w", it.seq, o.err))
			}
		}
		if it.last {
			s.appliedSeq.Store(it.seq)
		}
		switch {
		case errors.Is(o.err, events.ErrAlreadyApplied):
			continue // applied before this node restarted
		case errors.Is(o.err, events.ErrFailed):
			s.fail(o.err)
		}
		if it.id == "" {
			continue
		}
		s.applied.Add(1)
		s.mu.Lock()
		ch := s.waiters[it.id]
		delete(s.waiters, it.id)
		s.mu.Unlock()
		if ch != nil {
			ch <- o
		}
	}
}

// AppliedSinceOpen returns how many Txs and deletions of the log this Store applied
// since it was opened.
func (s *Store) AppliedSinceOpen() uint64 { return s.applied.Load() }

// WaitApplied waits until this node applied the log up to its last entry as of the
// call: reads then see every commit acknowledged before it, on any node.
func (s *Store) WaitApplied(ctx context.Context) error {
	end, err := s.LogEnd(ctx)
	if err != nil {
		return fmt.Errorf("wait applied: %w", err)
	}
	return s.WaitAppliedTo(ctx, end)
}

// WaitAppliedTo waits until this node applied the log up to entry seq (LogEnd's, say).
func (s *Store) WaitAppliedTo(ctx context.Context, seq uint64) error {
	// Most callers find the node caught up, or a few entries behind: a short poll costs
	// less than a notification on every entry applied.
	for wait := 500 * time.Microsecond; ; wait = min(2*wait, 10*time.Millisecond) {
		got := s.appliedSeq.Load()
		if got >= seq {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait applied: at %d of %d: %w", got, seq, ctx.Err())
		case <-s.failed:
			return s.Err()
		case <-time.After(wait):
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
		s.cancel() // first: a delivery blocked in ApplyLogged returns (consume ignores its error then)
		s.stopConsumer()
		s.pubs.Wait()
		<-s.resolved
		s.closeErr = s.PebbleStore.Close()
	})
	return s.closeErr
}
