package crashsim

import (
	"encoding/json"
	"strings"
	"testing"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

const root = "E_01J0000000000000000000000A"

// historyLine keeps what a workflow decided and drops what differs between runs: times,
// random values, scheduled IDs.
func TestHistoryLine(t *testing.T) {
	rel := relativizer(root)
	cases := []struct {
		ev   *pb.HistoryEvent
		want string
	}{
		{&pb.HistoryEvent{Kind: &pb.HistoryEvent_Persist{Persist: &pb.Persist{Kind: "random_u64(0,10)", Value: []byte("7")}}}, "persist random_u64(0,10)"},
		{&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "g:1",
			Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: root + ".g:1_1", Ffqn: "a:b/c.d", Params: []byte("[1]")}}}}},
			"child g:1 E_root.g:1_1 a:b/c.d[1]"},
		{&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "o:1-sleep",
			Request: &pb.JoinSetRequest_Delay{Delay: &pb.DelayRequest{DelayId: "Delay_01J0000000000000000000000A.o:1-sleep_1", ExpiresAt: 12345, ScheduleAt: []byte(`{"in":"1h"}`)}}}}},
			`delay o:1-sleep Delay_root.o:1-sleep_1 {"in":"1h"}`},
		{&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNext{JoinNext: &pb.JoinNext{JoinSetId: "g:1", RunExpiresAt: 99, RequestedFfqn: "a:b/c.d", Closing: true}}}, "join_next g:1 a:b/c.d closing"},
		{&pb.HistoryEvent{Kind: &pb.HistoryEvent_Schedule{Schedule: &pb.Schedule{ExecutionId: "E_01J0000000000000000000000B", ScheduledAt: 5, Ffqn: "a:b/c.d", Params: []byte("[]"), ScheduleAt: []byte(`"now"`)}}}, `schedule a:b/c.d[] at "now"`},
	}
	for _, c := range cases {
		if got := historyLine(c.ev, rel); got != c.want {
			t.Errorf("historyLine(%v) = %q, want %q", c.ev, got, c.want)
		}
	}
}

// difference names the first execution and what of it differs.
func TestDifference(t *testing.T) {
	want := []Execution{
		{ID: "E_root", FFQN: "a:b/c.wf", Params: json.RawMessage("[1]"), History: []string{"join_set_create g:1", "child g:1 E_root.g:1_1 a:b/c.act[1]"}, Result: json.RawMessage(`{"ok":1}`)},
		{ID: "E_root.g:1_1", FFQN: "a:b/c.act", Params: json.RawMessage("[1]"), History: []string{}, Result: json.RawMessage(`{"ok":1}`)},
	}
	clone := func() []Execution {
		out := make([]Execution, len(want))
		copy(out, want)
		for i := range out {
			out[i].History = append([]string(nil), want[i].History...)
		}
		return out
	}
	if d := difference(want, clone()); d != "" {
		t.Errorf("the same trees differ: %s", d)
	}
	got := clone()
	got[1].Result = json.RawMessage(`{"ok":2}`)
	if d := difference(want, got); !strings.Contains(d, `execution E_root.g:1_1: result {"ok":2}, the reference {"ok":1}`) {
		t.Errorf("another child result: %q", d)
	}
	got = clone()
	got[0].History[1] = "child g:1 E_root.g:1_1 a:b/c.act[2]"
	if d := difference(want, got); !strings.Contains(d, "execution E_root: history event 1") {
		t.Errorf("another child request: %q", d)
	}
	got = clone()[:1]
	if d := difference(want, got); !strings.Contains(d, "execution E_root.g:1_1 is missing") {
		t.Errorf("a missing child: %q", d)
	}
	got = clone()
	got[0].Result = nil
	if d := difference(want, got); !strings.Contains(d, "(unfinished)") {
		t.Errorf("an unfinished root: %q", d)
	}
}
