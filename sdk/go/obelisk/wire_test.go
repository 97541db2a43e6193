package obelisk

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// TestRequestsAreABIShapes: every request the SDK builds by hand (for speed) is, byte
// for byte, what encoding the request type of package abi gives, so the hand-written
// JSON cannot drift from the ABI's one definition.
func TestRequestsAreABIShapes(t *testing.T) {
	var sent []byte
	ctx := Context{&runState{host: func(req []byte) ([]byte, error) {
		sent = append(sent[:0], req...)
		if string(req[:len(`{"op":"log"`)]) == `{"op":"log"` {
			return []byte(`{"ok":null}`), nil
		}
		return []byte(`{"error":{"kind":"bad_request","message":"recorded"}}`), nil
	}}}
	js := JoinSet{id: "n:a/b-1"}
	at := time.Unix(1700000000, 5)
	name := "jobs"
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, tc := range []struct {
		what string
		do   func()
		op   string
		want any
	}{
		{"Log", func() { ctx.Log(LevelWarn, "a \"quoted\" <message>\n") }, abi.OpLog, abi.LogRequest{Level: abi.LevelWarn, Message: "a \"quoted\" <message>\n"}},
		{"Call", func() { _, _ = Call[int](ctx, "t:p/i.f", 1, "x", nil, 2.5) }, abi.OpCall, abi.CallRequest{FFQN: "t:p/i.f", Params: raw(`[1,"x",null,2.5]`)}},
		{"Call without params", func() { _ = CallVoid(ctx, "t:p/i.f") }, abi.OpCall, abi.CallRequest{FFQN: "t:p/i.f", Params: raw(`[]`)}},
		{"Call with a struct", func() { _ = CallVoid(ctx, "t:p/i.f", struct{ A int }{1}) }, abi.OpCall, abi.CallRequest{FFQN: "t:p/i.f", Params: raw(`[{"A":1}]`)}},
		{"Submit", func() { _, _ = Submit(ctx, js, "t:p/i.f", uint64(7)) }, abi.OpSubmit, abi.SubmitRequest{JoinSet: js.id, FFQN: "t:p/i.f", Params: raw(`[7]`)}},
		{"Submit with a list", func() { _, _ = Submit(ctx, js, "t:p/i.f", []int{1}) }, abi.OpSubmit, abi.SubmitRequest{JoinSet: js.id, FFQN: "t:p/i.f", Params: raw(`[[1]]`)}},
		{"Submit in a queue", func() { _, _ = Submit(ctx, js.InQueue("gpu/eu-1"), "t:p/i.f", uint64(7)) }, abi.OpSubmit, abi.SubmitRequest{JoinSet: js.id, FFQN: "t:p/i.f", Params: raw(`[7]`), Queue: "gpu/eu-1"}},
		{"Submit in the default queue again", func() { _, _ = Submit(ctx, js.InQueue("gpu").InQueue(""), "t:p/i.f", uint64(7)) }, abi.OpSubmit, abi.SubmitRequest{JoinSet: js.id, FFQN: "t:p/i.f", Params: raw(`[7]`)}},
		{"Submit with a retry policy", func() {
			_, _ = Submit(ctx, js.WithRetry(MaxRetries(8), RetryBackoff(1500*time.Microsecond), RetryJitter(0.25)), "t:p/i.f", uint64(7))
		}, abi.OpSubmit, abi.SubmitRequest{JoinSet: js.id, FFQN: "t:p/i.f", Params: raw(`[7]`), Retry: &abi.RetryPolicy{MaxRetries: ptr(uint32(8)), RetryExpBackoffMS: 2, RetryJitter: ptr(0.25)}}},
		{"Submit with the components' policies again", func() { _, _ = Submit(ctx, js.WithRetry(MaxRetries(1)).WithRetry(), "t:p/i.f", uint64(7)) }, abi.OpSubmit, abi.SubmitRequest{JoinSet: js.id, FFQN: "t:p/i.f", Params: raw(`[7]`)}},
		{"NewJoinSet", func() { _, _ = NewJoinSet(ctx) }, abi.OpJoinSetCreate, abi.JoinSetCreateRequest{}},
		{"NewJoinSetNamed", func() { _, _ = NewJoinSetNamed(ctx, name) }, abi.OpJoinSetCreate, abi.JoinSetCreateRequest{Name: &name}},
		{"SubmitDelay In", func() { _, _ = SubmitDelay(ctx, js, In(1500*time.Millisecond)) }, abi.OpSubmitDelay, abi.SubmitDelayRequest{JoinSet: js.id, ScheduleAt: marshalled(t, abi.ScheduleAt{In: map[string]uint64{"milliseconds": 1500}})}},
		{"SubmitDelay At", func() { _, _ = SubmitDelay(ctx, js, At(at)) }, abi.OpSubmitDelay, abi.SubmitDelayRequest{JoinSet: js.id, ScheduleAt: marshalled(t, abi.ScheduleAt{At: &abi.Time{Seconds: at.Unix(), Nanoseconds: 5}})}},
		{"SubmitDelay Now", func() { _, _ = SubmitDelay(ctx, js, Now()) }, abi.OpSubmitDelay, abi.SubmitDelayRequest{JoinSet: js.id, ScheduleAt: marshalled(t, abi.ScheduleNow)}},
		{"JoinNext", func() { _, _ = JoinNext(ctx, js) }, abi.OpJoinNext, abi.JoinNextRequest{JoinSet: js.id}},
		{"AwaitNext", func() { _, _, _ = AwaitNext[int](ctx, js, "t:p/i.f") }, abi.OpJoinNext, abi.JoinNextRequest{JoinSet: js.id, FFQN: "t:p/i.f"}},
		{"AwaitNext any", func() { _, _, _ = AwaitNext[int](ctx, js, "") }, abi.OpJoinNext, abi.JoinNextRequest{JoinSet: js.id}},
		{"JoinNextTry", func() { _, _, _ = JoinNextTry(ctx, js) }, abi.OpJoinNextTry, abi.JoinNextTryRequest{JoinSet: js.id}},
		{"Close", func() { _ = js.Close(ctx) }, abi.OpJoinSetClose, abi.JoinSetCloseRequest{JoinSet: js.id}},
		{"Get", func() { _, _ = Get[int](ctx, "E_1.g:1_1") }, abi.OpGet, abi.GetRequest{ExecutionID: "E_1.g:1_1"}},
		{"Sleep", func() { _, _ = Sleep(ctx, In(time.Minute)) }, abi.OpSleep, abi.SleepRequest{ScheduleAt: marshalled(t, abi.ScheduleAt{In: map[string]uint64{"milliseconds": 60000}})}},
		{"StubOk", func() { _ = StubOk(ctx, "E_1.g:1_1", 42) }, abi.OpStub, abi.StubRequest{ExecutionID: "E_1.g:1_1", Result: raw(`{"ok":42}`)}},
		{"StubErr", func() { _ = StubErr(ctx, "E_1.g:1_1", map[string]string{"k": "v"}) }, abi.OpStub, abi.StubRequest{ExecutionID: "E_1.g:1_1", Result: raw(`{"err":{"k":"v"}}`)}},
		{"StubOk nil", func() { _ = StubOk(ctx, "E_1.g:1_1", nil) }, abi.OpStub, abi.StubRequest{ExecutionID: "E_1.g:1_1", Result: raw(`{"ok":null}`)}},
		{"RandomU64", func() { _, _ = RandomU64(ctx, 3, 1<<63) }, abi.OpRandomU64, abi.RandomU64Request{Min: 3, MaxExclusive: 1 << 63}},
		{"RandomString", func() { _, _ = RandomString(ctx, 1, 9) }, abi.OpRandomString, abi.RandomStringRequest{MinLength: 1, MaxLengthExclusive: 9}},
		{"NewExecutionID", func() { _, _ = NewExecutionID(ctx) }, abi.OpExecutionIDGenerate, nil},
		{"Schedule", func() { _, _ = Schedule(ctx, At(at), "t:p/i.f", "x") }, abi.OpSchedule, abi.ScheduleRequest{FFQN: "t:p/i.f", Params: raw(`["x"]`), ScheduleAt: marshalled(t, abi.ScheduleAt{At: &abi.Time{Seconds: at.Unix(), Nanoseconds: 5}})}},
	} {
		sent = nil
		tc.do()
		want, err := encodeRequest(tc.op, tc.want)
		if err != nil {
			t.Fatalf("%s: encoding %T: %v", tc.what, tc.want, err)
		}
		if string(sent) != string(want) {
			t.Errorf("%s sent\n %s\nthe ABI's %T is\n %s", tc.what, sent, tc.want, want)
		}
	}
}

func marshalled(t *testing.T, v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }
