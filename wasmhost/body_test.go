package wasmhost

import (
	"context"
	"strings"
	"testing"
)

// bodyModule is a hand-made module whose run copies its request body from offset, at
// most outCap bytes, to address 4096 with request_body_read, and returns those bytes as
// its output (so the body given must be the JSON output wanted).
func bodyModule(offset int64, outCap int32) wmod {
	m := handModule("")
	m.imports = []wimport{{"obelisk_v1", "request_body_read", []byte{i64, i32, i32}, []byte{i32}}}
	var body []byte
	body = append(append(body, 0x42), sleb(offset)...)        // i64.const offset
	body = append(append(body, 0x41), sleb(4096)...)          // i32.const out_ptr
	body = append(append(body, 0x41), sleb(int64(outCap))...) // i32.const out_cap
	body = append(body, 0x10, 0x00)                           // call request_body_read
	body = append(body, 0xad)                                 // i64.extend_i32_u: the output's length
	body = append(append(body, 0x42), sleb(4096<<32)...)      // i64.const the output's address
	body = append(body, 0x84)                                 // i64.or
	m.funcs["obelisk_v1_run"] = wfunc{params: []byte{i32, i32}, results: []byte{i64}, body: body}
	return m
}

func TestRequestBodyRead(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		body    string
		offset  int64
		outCap  int32
		want    string // the output; "" for a failed run
		wantErr string
	}{
		{"whole body", `{"ok":"the body"}`, 0, 4096, `{"ok":"the body"}`, ""},
		{"from an offset", `xxxx{"ok":2}`, 4, 4096, `{"ok":2}`, ""},
		{"at most out_cap", `{"ok":3}and more`, 0, 8, `{"ok":3}`, ""},
		// 0 bytes at the end: an empty output, which is not a result.
		{"at the end", `{"ok":4}`, 8, 4096, "", "result is not a JSON object"},
		// -1 past the end: the length 0xffffffff is outside memory.
		{"past the end", `{"ok":5}`, 9, 4096, "", "outside memory"},
		{"negative offset", `{"ok":6}`, -1, 4096, "", "outside memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := testRT.Compile(ctx, "body", bodyModule(tt.offset, tt.outCap).encode())
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(ctx)
			inst, err := m.Instantiate(ctx, InstanceConfig{Kind: KindActivity, RequestBody: []byte(tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			out, err := inst.Run(ctx, RunInput{FFQN: "x.y"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Run = %s, %v; want an error containing %q", out, err, tt.wantErr)
				}
				return
			}
			if err != nil || string(out) != tt.want {
				t.Fatalf("Run = %s, %v; want %s", out, err, tt.want)
			}
		})
	}
	// An instance without a body reads an empty one.
	m, err := testRT.Compile(ctx, "nobody", bodyModule(0, 4096).encode())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	inst, err := m.Instantiate(ctx, InstanceConfig{Kind: KindActivity})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := inst.Run(ctx, RunInput{FFQN: "x.y"}); err == nil || !strings.Contains(err.Error(), "result is not a JSON object") {
		t.Fatalf("Run without a body = %s, %v; want an empty output", out, err)
	}
}

func TestRequestBodyReadSignature(t *testing.T) {
	m := handModule(`{"ok":1}`)
	m.imports = []wimport{{"obelisk_v1", "request_body_read", []byte{i32, i32, i32}, []byte{i32}}}
	_, err := testRT.Compile(context.Background(), "bad", m.encode())
	if want := "import obelisk_v1.request_body_read has signature (i32, i32, i32) -> (i32), want (i64, i32, i32) -> (i32)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Compile: %v, want an error containing %q", err, want)
	}
}
