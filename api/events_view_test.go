package api

import (
	"encoding/json"
	"reflect"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// SampleEvents returns one event of every kind the protobuf schema allows (every case
// of Event.kind, HistoryEvent.kind and JoinSetRequest.request), built from the
// descriptors so that a new case cannot be missed.
func sampleEvents(t *testing.T) []*pb.Event {
	t.Helper()
	var out []*pb.Event
	kind := (&pb.Event{}).ProtoReflect().Descriptor().Oneofs().ByName("kind")
	for i := 0; i < kind.Fields().Len(); i++ {
		f := kind.Fields().Get(i)
		ev := &pb.Event{CreatedAt: 1_700_000_000_000_000_000}
		m := ev.ProtoReflect()
		if f.Message() != (&pb.HistoryEvent{}).ProtoReflect().Descriptor() {
			m.Set(f, protoreflect.ValueOfMessage(m.NewField(f).Message()))
			out = append(out, ev)
			continue
		}
		hkind := f.Message().Oneofs().ByName("kind")
		for j := 0; j < hkind.Fields().Len(); j++ {
			hf := hkind.Fields().Get(j)
			if hf.Message() == (&pb.JoinSetRequest{}).ProtoReflect().Descriptor() {
				out = append(out,
					&pb.Event{Kind: &pb.Event_History{History: &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{
						JoinSetId: "g:1", Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: "E_1.g:1_1", Ffqn: "a:b/c.d", Params: []byte("[1]")}}}}}}},
					&pb.Event{Kind: &pb.Event_History{History: &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{
						JoinSetId: "g:1", Request: &pb.JoinSetRequest_Delay{Delay: &pb.DelayRequest{DelayId: "Delay_1.g:1_2", ExpiresAt: 1}}}}}}})
				continue
			}
			h := &pb.HistoryEvent{}
			hm := h.ProtoReflect()
			hm.Set(hf, protoreflect.ValueOfMessage(hm.NewField(hf).Message()))
			out = append(out, &pb.Event{CreatedAt: 1, Kind: &pb.Event_History{History: h}})
		}
	}
	return out
}

// TestEventDetailsCoverEveryKind: every kind of event renders details of a type that
// EventDetails lists for that kind, and every kind listed exists.
func TestEventDetailsCoverEveryKind(t *testing.T) {
	table := map[string][]reflect.Type{}
	for _, k := range EventDetails {
		if _, dup := table[k.Kind]; dup {
			t.Errorf("kind %s is listed twice", k.Kind)
		}
		for _, v := range k.Types {
			table[k.Kind] = append(table[k.Kind], reflect.TypeOf(v))
		}
	}
	seen := map[string]bool{}
	for _, ev := range sampleEvents(t) {
		kind := events.EventKind(ev)
		seen[kind] = true
		types, ok := table[kind]
		if !ok {
			t.Errorf("kind %s is not in EventDetails", kind)
			continue
		}
		got := reflect.TypeOf(EventDetailsOf(ev))
		found := false
		for _, ty := range types {
			found = found || ty == got
		}
		if !found {
			t.Errorf("kind %s renders %v, not one of %v", kind, got, types)
		}
		v := EventView(3, ev)
		if v.Kind != kind || !json.Valid([]byte(v.DetailsJson)) {
			t.Errorf("EventView of %s: %+v", kind, v)
		}
	}
	for k := range table {
		if !seen[k] {
			t.Errorf("EventDetails lists %s, which no event has", k)
		}
	}
}

// TestEventViewJSON pins the rendering of a few kinds.
func TestEventViewJSON(t *testing.T) {
	for _, tc := range []struct {
		ev   *pb.Event
		want string
	}{
		{&pb.Event{Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "a:b/c.d", Params: []byte("[1, 2]"), ScheduledAt: 1e9, ComponentId: "workflow:w:sha256:00"}}},
			`{"ffqn":"a:b/c.d","params":[1,2],"scheduled_at":"1970-01-01T00:00:01Z","component_id":"workflow:w:sha256:00"}`},
		{&pb.Event{Kind: &pb.Event_Locked{Locked: &pb.Locked{ExecutorId: "x", RunId: "r", LockExpiresAt: 2e9, Retry: &pb.RetryConfig{MaxRetries: 3, RetryExpBackoff: 5e7}}}},
			`{"executor_id":"x","run_id":"r","lock_expires_at":"1970-01-01T00:00:02Z","retry":{"max_retries":3,"unlimited":false,"retry_exp_backoff_ms":50}}`},
		{&pb.Event{Kind: &pb.Event_TemporarilyFailed{TemporarilyFailed: &pb.TemporarilyFailed{BackoffExpiresAt: 1e9, Reason: "boom"}}},
			`{"backoff_expires_at":"1970-01-01T00:00:01Z","reason":"boom"}`},
		{&pb.Event{Kind: &pb.Event_TemporarilyFailed{TemporarilyFailed: &pb.TemporarilyFailed{BackoffExpiresAt: 1e9, Reason: "boom", Detail: []byte(`"x"`)}}},
			`{"backoff_expires_at":"1970-01-01T00:00:01Z","reason":"boom","detail":"x"}`},
		{&pb.Event{Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(`{"ok": 1}`)}}}, `{"result":{"ok":1}}`},
		{&pb.Event{Kind: &pb.Event_Finished{Finished: &pb.Finished{}}}, `{"result":null}`},
		{&pb.Event{Kind: &pb.Event_Paused{Paused: &pb.Paused{}}}, `{}`},
		{&pb.Event{Kind: &pb.Event_History{History: &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNextTry{JoinNextTry: &pb.JoinNextTry{JoinSetId: "g:1", Outcome: "pending"}}}}},
			`{"join_set_id":"g:1","outcome":"pending"}`},
	} {
		if got := EventView(0, tc.ev).DetailsJson; got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", events.EventKind(tc.ev), got, tc.want)
		}
	}
}
