package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

// watchPage is how many events WatchEvents reads from the store at a time.
const watchPage = 256

// eventKinds are the kinds of events.EventKind, which WatchEvents filters on.
var eventKinds = []string{
	"created", "locked", "unlocked", "temporarily_failed", "temporarily_timed_out",
	"history", "history.persist", "history.join_set_create", "history.join_set_request",
	"history.join_next", "history.schedule", "history.stub", "history.join_next_try",
	"cancel_requested", "paused", "unpaused", "finished",
}

// WatchEvents streams the global event log (events/global.go): the stored events after
// from_position, then, whenever the store publishes new positions, the new ones. The
// store only shows positions whose batch has committed (durably), so a subscriber that
// resumes from the last position it received, on this server or after a restart, misses
// and repeats nothing.
func (h *executions) WatchEvents(ctx context.Context, req *connect.Request[pb.WatchEventsRequest], stream *connect.ServerStream[pb.WatchEventsResponse]) error {
	f, err := newEventFilter(req.Msg)
	if err != nil {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	// End with the server: a graceful shutdown waits for handlers, and this one would
	// only end when the client leaves.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if shutdown := shutdownOf(ctx); shutdown != nil {
		go func() {
			select {
			case <-shutdown:
				cancel(errShuttingDown)
			case <-ctx.Done():
			}
		}()
	}
	store := h.e.Store()
	if last := store.LastPosition(); req.Msg.FromPosition > last {
		// Positions are durable: a client ahead of the log saw another store.
		return connect.NewError(connect.CodeOutOfRange, fmt.Errorf("from_position %d is after the last event (position %d)", req.Msg.FromPosition, last))
	}
	// Send the headers now: the client knows it is connected even if nothing matches.
	if err := stream.Send(nil); err != nil {
		return err
	}
	next := req.Msg.FromPosition + 1
	var skipped uint64 // positions deleted by retention since the last event sent
	for {
		page, through, err := store.EventsFrom(ctx, next, watchPage)
		if err != nil {
			return watchError(ctx, err)
		}
		for _, pe := range page {
			skipped += pe.Skipped
			ok, err := f.match(ctx, store, pe)
			if errors.Is(err, events.ErrNotFound) {
				ok, err = false, nil // deleted by retention while we read it
			}
			if err != nil {
				return watchError(ctx, err)
			}
			if !ok {
				continue
			}
			if err := stream.Send(&pb.WatchEventsResponse{Position: pe.Position, ExecutionId: pe.ExecutionID, Event: EventView(pe.Version, pe.Event), SkippedBefore: skipped}); err != nil {
				return err
			}
			skipped = 0
		}
		if through >= next {
			// Positions after the last event returned and up to through were deleted.
			if len(page) > 0 {
				skipped += through - page[len(page)-1].Position
			} else {
				skipped += through - next + 1
			}
			next = through + 1
		}
		if len(page) == watchPage {
			continue
		}
		if _, err := store.WaitPosition(ctx, next-1); err != nil {
			return watchError(ctx, err)
		}
	}
}

var errShuttingDown = errors.New("the server is shutting down: resume from the last position")

// shutdowns are closed when their server starts shutting down (*http.Server -> chan).
var shutdowns sync.Map

// shutdownOf returns a channel closed when the server of the request shuts down (nil
// outside an http.Server).
func shutdownOf(ctx context.Context) <-chan struct{} {
	srv, _ := ctx.Value(http.ServerContextKey).(*http.Server)
	if srv == nil {
		return nil
	}
	ch := make(chan struct{})
	if v, loaded := shutdowns.LoadOrStore(srv, ch); loaded {
		return v.(chan struct{})
	}
	srv.RegisterOnShutdown(func() { close(ch) })
	return ch
}

func watchError(ctx context.Context, err error) error {
	switch {
	case errors.Is(context.Cause(ctx), errShuttingDown), errors.Is(err, events.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, errShuttingDown)
	case ctx.Err() != nil:
		return connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	return apiError(err)
}

// eventFilter selects the events of WatchEvents.
type eventFilter struct {
	idPrefix, ffqnPrefix string
	kinds                map[string]bool // nil: all
	histories            bool            // "history" asked: every history.* kind
	ffqns                map[string]string
}

func newEventFilter(r *pb.WatchEventsRequest) (*eventFilter, error) {
	f := &eventFilter{idPrefix: events.CanonicalIDPrefix(r.ExecutionIdPrefix), ffqnPrefix: r.FfqnPrefix}
	for _, k := range r.Kinds {
		if !slices.Contains(eventKinds, k) {
			return nil, fmt.Errorf("unknown event kind %s: want one of %s", clip.Quote(k), strings.Join(eventKinds, ", "))
		}
		if f.kinds == nil {
			f.kinds = map[string]bool{}
		}
		f.kinds[k] = true
		f.histories = f.histories || k == "history"
	}
	if f.ffqnPrefix != "" {
		f.ffqns = map[string]string{}
	}
	return f, nil
}

func (f *eventFilter) match(ctx context.Context, store events.Store, pe events.PositionedEvent) (bool, error) {
	if !strings.HasPrefix(pe.ExecutionID, f.idPrefix) {
		return false, nil
	}
	if f.kinds != nil {
		k := events.EventKind(pe.Event)
		if !f.kinds[k] && !(f.histories && strings.HasPrefix(k, "history.")) {
			return false, nil
		}
	}
	if f.ffqns == nil {
		return true, nil
	}
	ffqn, ok := f.ffqns[pe.ExecutionID]
	if !ok {
		if c := pe.Event.GetCreated(); c != nil {
			ffqn = c.Ffqn
		} else {
			st, err := store.State(ctx, pe.ExecutionID)
			if err != nil {
				return false, err
			}
			ffqn = st.Ffqn
		}
		if len(f.ffqns) >= 100_000 { // a function never changes; just bound the memory
			clear(f.ffqns)
		}
		f.ffqns[pe.ExecutionID] = ffqn
	}
	return strings.HasPrefix(ffqn, f.ffqnPrefix), nil
}
