package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// An execution actor serialises every change of one execution. It keeps no state of its
// own between messages: each message reads the execution's current state from the store,
// decides, and commits, so a restarted (or re-spawned) actor is never stale.
type executionActor struct {
	e  *Engine
	id string
}

// changeMsg asks the actor to commit what decide returns for the current state (nil:
// the state does not exist yet). decide returning a nil Tx changes nothing.
type changeMsg struct {
	ctx    context.Context
	decide func(st *pb.ExecutionState) (*events.Tx, error)
}

type changeReply struct {
	// state is the execution's state after the change (or as it was, if nothing changed).
	state  *pb.ExecutionState
	states map[string]*pb.ExecutionState
	err    error
}

// passivateAfter is how long an idle execution actor stays in memory.
const passivateAfter = 10 * time.Second

func (a *executionActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		c.SetReceiveTimeout(passivateAfter)
	case *actor.ReceiveTimeout:
		c.Stop(c.Self())
	case *changeMsg:
		defer func() {
			if r := recover(); r != nil {
				// Answer the caller now rather than at its timeout, then let the
				// supervisor restart the actor: it holds nothing the store does not.
				c.Respond(&changeReply{err: fmt.Errorf("execution actor %s crashed: %v", a.id, r)})
				panic(r)
			}
		}()
		c.Respond(a.change(m))
	}
}

// maxDecideRetries bounds how often a change is decided again after a conflict.
const maxDecideRetries = 5

// change reads the execution's state, decides and commits. The store's expected
// versions are what keep an execution's history right (docs/RATIONALE.md, "One writer
// check: the store's versions"): a conflict on this execution means a write that does
// not go through the actor (the running workflow's flush, a webhook's commit, another
// node) landed between the read and the commit, so the change is decided again on the
// new state. decide must therefore have no effect but its Tx.
func (a *executionActor) change(m *changeMsg) *changeReply {
	for attempt := 0; ; attempt++ {
		st, err := a.e.store.State(m.ctx, a.id)
		if err != nil && !errors.Is(err, events.ErrNotFound) {
			return &changeReply{err: err}
		}
		tx, err := m.decide(st)
		if err != nil || tx == nil {
			return &changeReply{state: st, err: err}
		}
		states, err := a.e.store.Commit(m.ctx, tx)
		var ce *events.ConflictError
		if errors.As(err, &ce) && ce.ExecutionID == a.id && attempt < maxDecideRetries {
			continue
		}
		if err != nil {
			return &changeReply{state: st, err: err}
		}
		if n, ok := states[a.id]; ok {
			st = n
		}
		return &changeReply{state: st, states: states}
	}
}

// askTimeout bounds waiting for an execution actor; a commit normally takes a few ms.
const askTimeout = 60 * time.Second

// change runs decide in the actor of execution id, spawning the actor if needed.
func (e *Engine) change(ctx context.Context, id string, decide func(st *pb.ExecutionState) (*events.Tx, error)) (*pb.ExecutionState, error) {
	msg := &changeMsg{ctx: ctx, decide: decide}
	for attempt := 0; ; attempt++ {
		pid, err := e.system.Root.SpawnNamed(e.execProps(id), id)
		if err != nil && !errors.Is(err, actor.ErrNameExists) {
			return nil, fmt.Errorf("spawn actor of %s: %w", id, err)
		}
		res, err := e.system.Root.RequestFuture(pid, msg, askTimeout).Result()
		if errors.Is(err, actor.ErrDeadLetter) && attempt < 3 {
			continue // the actor passivated between spawn and send
		}
		if err != nil {
			return nil, fmt.Errorf("ask actor of %s: %w", id, err)
		}
		r := res.(*changeReply)
		return r.state, r.err
	}
}

func (e *Engine) execProps(id string) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &executionActor{e: e, id: id} })
}
