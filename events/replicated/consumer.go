package replicated

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// The log's consumer: an ordered consumer (an ephemeral, R1, in-memory JetStream
// consumer that the client re-creates after the last entry it delivered when it misses
// heartbeats or sees a gap) under a watch of this Store's own. The client's recovery
// is not enough on its own: when the server holding the consumer dies, its re-creation
// can stall for good (seen with a killed node: one survivor took no entry after its
// "no heartbeat"), and a node that takes no entry blocks every Commit it makes while
// the others go on. So a consumer that delivered nothing for stallAfter while the
// stream holds entries past the last one taken is replaced by a new one from the next
// entry; an entry taken twice across the switch is skipped, never applied twice.

// Timings of the consumer and its watch.
const (
	// consumerHeartbeat is the pull heartbeat: missing two makes the client re-create
	// its consumer after the last entry it delivered (a node whose server restarted
	// resumes in about two seconds, not NATS's default ten).
	consumerHeartbeat = time.Second
	// stallAfter is how long a consumer may deliver nothing, while the stream has
	// entries it did not deliver, before it is replaced: beyond the client's own
	// recovery (two heartbeats and a re-creation).
	stallAfter = 5 * time.Second
	// consumerResets bounds the client's attempts to re-create a consumer: past it the
	// watch takes over (unbounded, the client's retries could block it for good).
	consumerResets = 3
)

// consumer is the state of the log's consumer; mu serialises its deliveries across
// the consumers that replace each other.
type consumer struct {
	mu       sync.Mutex
	gen      int                      // the current consumer's; deliveries of an older one are dropped
	cc       jetstream.ConsumeContext // the current consumer's, nil once stopped for good
	stopped  bool                     // Close stopped it: no other is started
	consumed uint64                   // the last entry taken
	lastTook time.Time                // when an entry was last taken, or the consumer started
	// suspect: the client reported an error (missed heartbeats, a failed re-creation)
	// since the last entry taken. The watch asks where the stream ends often only then,
	// or while a Commit of this node waits; otherwise every idleCheck.
	suspect atomic.Bool
}

// idleCheck is how often the watch asks where the stream ends while nothing is
// suspected and no Commit waits: a stall it finds then delays only other nodes' writes.
const idleCheck = time.Minute

// startConsumer starts a consumer from the entry after the last one taken, replacing
// the current one if any.
func (s *Store) startConsumer(ctx context.Context) error {
	c := &s.consumer
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	old := c.cc
	c.cc = nil
	c.gen++
	gen, from := c.gen, c.consumed+1
	c.lastTook = time.Now()
	c.mu.Unlock()
	if old != nil {
		// Stop waits for the client's re-creation of its consumer in progress, if any,
		// which may take long; what the old consumer delivers meanwhile is dropped.
		go old.Stop()
	}

	cons, err := s.js.OrderedConsumer(ctx, s.opts.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from, MaxResetAttempts: consumerResets,
	})
	if err != nil {
		return fmt.Errorf("consume %s from %d: %w", s.opts.Stream, from, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { s.consume(gen, msg) },
		jetstream.PullHeartbeat(consumerHeartbeat), jetstream.PullExpiry(10*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			s.consumer.suspect.Store(true)
			s.opts.Logger.Debug("replicated store: consumer", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("consume %s from %d: %w", s.opts.Stream, from, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.gen != gen {
		go cc.Stop() // Close, or another start, came meanwhile
		return nil
	}
	c.cc = cc
	return nil
}

// stopConsumer stops the consumer for good (Close).
func (s *Store) stopConsumer() {
	c := &s.consumer
	c.mu.Lock()
	c.stopped = true
	c.gen++ // nothing delivered from now on is taken
	old := c.cc
	c.cc = nil
	c.mu.Unlock()
	if old != nil {
		go old.Stop() // see startConsumer
	}
}

// watchConsumer replaces a consumer that stalled (see the comment at the top of this
// file) until the store closes or fails.
func (s *Store) watchConsumer() {
	c := &s.consumer
	tick := time.NewTicker(consumerHeartbeat)
	defer tick.Stop()
	var asked time.Time // the stream's end was last asked for
	for {
		select {
		case <-s.closing:
			return
		case <-s.failed:
			return
		case <-tick.C:
		}
		if !c.mu.TryLock() {
			continue // an entry is being taken: not stalled
		}
		idle, at := time.Since(c.lastTook), c.consumed
		c.mu.Unlock()
		s.mu.Lock()
		waiting := len(s.waiters) > 0
		s.mu.Unlock()
		every := idleCheck
		if waiting || c.suspect.Load() {
			every = stallAfter
		}
		if idle < stallAfter || time.Since(asked) < every {
			continue
		}
		asked = time.Now()
		ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
		end, err := s.LogEnd(ctx)
		cancel()
		if err != nil {
			// No answer (no stream leader: this node may be in a minority): nothing a new
			// consumer would change.
			s.opts.Logger.Debug("replicated store: the stream's end unknown", "err", err)
			continue
		}
		if end <= at {
			continue // idle: nothing to take
		}
		s.opts.Logger.Warn("replicated store: the log's consumer stalled; starting another", "taken", at, "stream_end", end, "idle", idle.Round(time.Millisecond))
		ctx, cancel = context.WithTimeout(s.ctx, 30*time.Second)
		if err := s.startConsumer(ctx); err != nil {
			s.opts.Logger.Warn("replicated store: starting a consumer", "err", err)
		}
		cancel()
	}
}

// consume takes the log's entries in order and queues them for the resolver. The Tx at
// index i of entry seq is at position seq<<16|i of the local store (events/applied.go).
// Deliveries are serialised (consumer.mu), so an older consumer's late delivery cannot
// overtake the current one's.
func (s *Store) consume(gen int, msg jetstream.Msg) {
	c := &s.consumer
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || s.Err() != nil {
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		s.fail(fmt.Errorf("apply the log: entry metadata: %w", err))
		return
	}
	seq := md.Sequence.Stream
	switch {
	case seq <= c.consumed:
		return // taken already (delivered again by a consumer that replaced another)
	case seq != c.consumed+1:
		// The ordered consumer skips an entry removed from the stream without a word:
		// applying the next one would fork this node from those that applied it.
		s.fail(fmt.Errorf("apply the log: entry %d follows entry %d (entries removed from stream %s?)", seq, c.consumed, s.opts.Stream))
		return
	}
	c.consumed, c.lastTook = seq, time.Now()
	c.suspect.Store(false)
	var e pb.LogEntry
	if err := proto.Unmarshal(msg.Data(), &e); err != nil {
		// An entry this node cannot read: applying the ones after it would fork this
		// node's state from the others'.
		s.fail(fmt.Errorf("apply the log: decode entry %d: %w", seq, err))
		return
	}
	var items []item
	switch k := e.Kind.(type) {
	case *pb.LogEntry_Batch:
		for i, m := range k.Batch.Txs {
			if s.Err() != nil || i >= 1<<16 {
				return
			}
			a, err := s.PebbleStore.ApplyLogged(s.ctx, seq<<16|uint64(i), decodeTx(m))
			if err != nil {
				if s.ctx.Err() == nil {
					s.fail(err)
				}
				return
			}
			items = append(items, item{seq: seq, id: m.Id, applying: a})
		}
		if len(items) == 0 {
			items = append(items, item{seq: seq}) // nothing to apply: the entry is passed
		}
	case *pb.LogEntry_DeleteTrees:
		if seq<<16|0xffff <= s.openedAt {
			items = append(items, item{seq: seq}) // ran before this node restarted
			break
		}
		items = append(items, item{seq: seq, id: msg.Headers().Get(jetstream.MsgIDHeader), roots: k.DeleteTrees.Roots, done: make(chan struct{})})
	default:
		s.fail(fmt.Errorf("apply the log: entry %d of an unknown kind (a newer node wrote it?)", seq))
		return
	}
	items[len(items)-1].last = true
	for _, it := range items {
		select {
		case s.items <- it:
		case <-s.closing:
			return
		}
		if it.done != nil {
			// Nothing after a deletion is queued before it ran: what it deletes is
			// decided at its place in the log.
			select {
			case <-it.done:
			case <-s.closing:
			}
		}
	}
}
