package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

func kvSet(bucket, key, value string) KVWrite { return KVWrite{Bucket: bucket, Key: key, Value: value} }

func kvGet(t *testing.T, s *PebbleStore, bucket, key string) (string, bool) {
	t.Helper()
	v, ok, err := s.KVGet(context.Background(), bucket, key)
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	return v, ok
}

func kvKeys(entries []KVEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Key
	}
	return out
}

// TestKVSetGetDelete: each step is one Tx; after it, get answers want (absent if !ok).
func TestKVSetGetDelete(t *testing.T) {
	s := gOpen(t, t.TempDir())
	steps := []struct {
		name   string
		writes []KVWrite
		key    string
		want   string
		ok     bool
	}{
		{"absent", nil, "k", "", false},
		{"set", []KVWrite{kvSet("b", "k", "v1")}, "k", "v1", true},
		{"overwrite", []KVWrite{kvSet("b", "k", "v2")}, "k", "v2", true},
		{"empty value is a value", []KVWrite{kvSet("b", "k", "")}, "k", "", true},
		{"delete", []KVWrite{{Bucket: "b", Key: "k", Delete: true}}, "k", "", false},
		{"delete absent", []KVWrite{{Bucket: "b", Key: "k", Delete: true}}, "k", "", false},
		{"later write of a Tx wins", []KVWrite{kvSet("b", "k", "x"), kvSet("b", "k", "y")}, "k", "y", true},
		{"set then delete in one Tx", []KVWrite{kvSet("b", "k2", "x"), {Bucket: "b", Key: "k2", Delete: true}}, "k2", "", false},
		{"key with NUL and unicode", []KVWrite{kvSet("b", "a\x00ž", "1")}, "a\x00ž", "1", true},
	}
	for _, st := range steps {
		if len(st.writes) > 0 {
			states, err := s.Commit(context.Background(), &Tx{KV: st.writes})
			if err != nil {
				t.Fatalf("%s: commit: %v", st.name, err)
			}
			if len(states) != 0 {
				t.Fatalf("%s: a KV-only Tx returned states %v", st.name, states)
			}
		}
		if v, ok := kvGet(t, s, "b", st.key); v != st.want || ok != st.ok {
			t.Fatalf("%s: get = %q %v, want %q %v", st.name, v, ok, st.want, st.ok)
		}
	}
	if s.LastPosition() != 0 {
		t.Fatalf("KV writes took global positions: last %d", s.LastPosition())
	}
}

func TestKVList(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	var writes []KVWrite
	for _, k := range []string{"user/1", "user/2", "user/10", "user/3", "users", "x", "a\x00"} {
		writes = append(writes, kvSet("a", k, "v-"+k))
	}
	writes = append(writes, kvSet("ab", "user/0", "other bucket"), kvSet("a\x01", "user/00", "other bucket"), kvSet("b", "a", "other bucket"))
	gCommit(t, s, &Tx{KV: writes})

	tests := []struct {
		name, bucket, prefix, cursor string
		limit                        int
		want                         []string
		next                         string
	}{
		{"whole bucket in byte order", "a", "", "", 0, []string{"a\x00", "user/1", "user/10", "user/2", "user/3", "users", "x"}, ""},
		{"prefix", "a", "user/", "", 0, []string{"user/1", "user/10", "user/2", "user/3"}, ""},
		{"prefix is a whole key", "a", "users", "", 0, []string{"users"}, ""},
		{"page", "a", "user", "", 2, []string{"user/1", "user/10"}, "user/10"},
		{"after cursor", "a", "user", "user/10", 2, []string{"user/2", "user/3"}, "user/3"},
		{"last page has no next", "a", "user", "user/3", 2, []string{"users"}, ""},
		{"exactly full last page has no next", "a", "user/", "user/10", 2, []string{"user/2", "user/3"}, ""},
		{"cursor before the prefix", "a", "user/", "b", 0, []string{"user/1", "user/10", "user/2", "user/3"}, ""},
		{"cursor past the prefix", "a", "user/", "z", 0, nil, ""},
		{"cursor not a key", "a", "", "user/15", 0, []string{"user/2", "user/3", "users", "x"}, ""},
		{"no match", "a", "zz", "", 0, nil, ""},
		{"bucket is a prefix of another", "ab", "", "", 0, []string{"user/0"}, ""},
		{"unknown bucket", "nope", "", "", 0, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next, err := s.KVList(ctx, tt.bucket, tt.prefix, tt.cursor, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%q", kvKeys(got)) != fmt.Sprintf("%q", tt.want) || next != tt.next {
				t.Fatalf("list = %q next %q, want %q next %q", kvKeys(got), next, tt.want, tt.next)
			}
			for _, e := range got {
				if e.Value != "v-"+e.Key && tt.bucket == "a" {
					t.Fatalf("entry %q has value %q", e.Key, e.Value)
				}
			}
		})
	}

	// Paging through a bucket by the returned cursors visits every key once, and the
	// default and maximum page sizes hold.
	writes = writes[:0]
	for i := range 2500 {
		writes = append(writes, kvSet("big", fmt.Sprintf("k%05d", i), strconv.Itoa(i)))
	}
	gCommit(t, s, &Tx{KV: writes})
	for _, tt := range []struct{ limit, page int }{{0, DefaultKVListLimit}, {-1, DefaultKVListLimit}, {7, 7}, {5000, MaxKVListLimit}} {
		seen, cursor, pages := 0, "", 0
		for {
			got, next, err := s.KVList(ctx, "big", "", cursor, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(got) > tt.page || (next != "" && len(got) != tt.page) {
				t.Fatalf("limit %d: page of %d entries (next %q), want %d", tt.limit, len(got), next, tt.page)
			}
			for _, e := range got {
				if e.Key != fmt.Sprintf("k%05d", seen) || e.Value != strconv.Itoa(seen) {
					t.Fatalf("limit %d: entry %d is %q=%q", tt.limit, seen, e.Key, e.Value)
				}
				seen++
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if seen != 2500 || pages != (2500+tt.page-1)/tt.page {
			t.Fatalf("limit %d: %d entries in %d pages, want 2500", tt.limit, seen, pages)
		}
	}
}

// execTx creates an execution alongside the KV part of a Tx, to show whether the Tx's
// Appends were written with it.
func execTx(id string, kvw []KVWrite, checks []KVCheck) *Tx {
	tx := gAppend(id, 0, gCreated(1))
	tx.KV, tx.KVChecks = kvw, checks
	return tx
}

func TestKVCheck(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	gCommit(t, s, &Tx{KV: []KVWrite{kvSet("b", "present", "v"), kvSet("b", "empty", "")}})
	check := func(key string, present bool, want string) KVWrite {
		return KVWrite{Bucket: "b", Key: key, Value: "new", Check: true, ExpectedPresent: present, Expected: want}
	}
	tests := []struct {
		name     string
		writes   []KVWrite
		checks   []KVCheck
		conflict string // the key of the expected conflict
	}{
		{"absent as expected", []KVWrite{check("absent", false, "")}, nil, ""},
		{"present as expected", []KVWrite{check("present", true, "v")}, nil, ""},
		{"empty value as expected", []KVWrite{check("empty", true, "")}, nil, ""},
		{"expected absent, present", []KVWrite{check("present", false, "")}, nil, "present"},
		{"expected a value, absent", []KVWrite{check("absent", true, "v")}, nil, "absent"},
		{"value mismatch", []KVWrite{check("present", true, "w")}, nil, "present"},
		{"empty value is not absent", []KVWrite{check("empty", false, "")}, nil, "empty"},
		{"sees its own earlier write", []KVWrite{kvSet("b", "absent", "1"), check("absent", true, "1")}, nil, ""},
		{"sees its own earlier delete", []KVWrite{{Bucket: "b", Key: "present", Delete: true}, check("present", false, "")}, nil, ""},
		{"a later write's conflict refuses the earlier", []KVWrite{kvSet("b", "other", "1"), check("present", true, "w")}, nil, "present"},
		{"pure check holds", nil, []KVCheck{{Bucket: "b", Key: "present", ExpectedPresent: true, Expected: "v"}}, ""},
		{"pure check of absent holds", nil, []KVCheck{{Bucket: "b", Key: "absent"}}, ""},
		{"pure check fails", nil, []KVCheck{{Bucket: "b", Key: "present", ExpectedPresent: true, Expected: "old"}}, "present"},
		{"checks come before writes", []KVWrite{kvSet("b", "absent", "1")}, []KVCheck{{Bucket: "b", Key: "absent", ExpectedPresent: true, Expected: "1"}}, "absent"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := NewExecutionID(time.Unix(0, int64(i+1)))
			before := map[string]string{}
			for _, k := range []string{"present", "empty", "absent", "other"} {
				if v, ok := kvGet(t, s, "b", k); ok {
					before[k] = v
				}
			}
			_, err := s.Commit(ctx, execTx(id, tt.writes, tt.checks))
			after := map[string]string{}
			for _, k := range []string{"present", "empty", "absent", "other"} {
				if v, ok := kvGet(t, s, "b", k); ok {
					after[k] = v
				}
			}
			_, stErr := s.State(ctx, id)
			if tt.conflict == "" {
				if err != nil || stErr != nil {
					t.Fatalf("commit: %v; state: %v", err, stErr)
				}
				// Undo for the next case.
				var undo []KVWrite
				for _, k := range []string{"present", "empty", "absent", "other"} {
					if v, ok := before[k]; ok {
						undo = append(undo, kvSet("b", k, v))
					} else {
						undo = append(undo, KVWrite{Bucket: "b", Key: k, Delete: true})
					}
				}
				gCommit(t, s, &Tx{KV: undo})
				return
			}
			var ce *KVConflictError
			if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) || ce.Bucket != "b" || ce.Key != tt.conflict {
				t.Fatalf("commit: %v, want a KV conflict on b/%s", err, tt.conflict)
			}
			if !errors.Is(stErr, ErrNotFound) {
				t.Fatalf("the refused Tx's execution exists: %v", stErr)
			}
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("the refused Tx changed KV: %v, before %v", after, before)
			}
		})
	}
}

func TestKVConflictError(t *testing.T) {
	tests := []struct {
		err  KVConflictError
		want string
	}{
		{KVConflictError{Bucket: "b", Key: "k", ExpectedPresent: true, Expected: "1", Present: true, Actual: "2"},
			`kv "b"/"k": conflict: expected value "1", found value "2"`},
		{KVConflictError{Bucket: "b", Key: "k", Present: true, Actual: "2"},
			`kv "b"/"k": conflict: expected no value, found value "2"`},
		{KVConflictError{Bucket: "b", Key: "k", ExpectedPresent: true, Expected: strings.Repeat("x", 1<<20)},
			`kv "b"/"k": conflict: expected value "` + strings.Repeat("x", 100) + `"…(1048576 bytes), found no value`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %s, want %s", got, tt.want)
		}
	}
	if !errors.Is(&ConflictError{ExecutionID: "E_1"}, ErrConflict) {
		t.Error("ConflictError does not match ErrConflict")
	}
	if errors.Is(&KVConflictError{}, ErrInvalidArgument) {
		t.Error("KVConflictError matches ErrInvalidArgument")
	}
}

// TestKVGroup: the Txs of one group see each other's KV writes, and a refused Tx's do
// not count.
func TestKVGroup(t *testing.T) {
	s := gOpen(t, t.TempDir())
	cas := func(key string, present bool, want, value string) *Tx {
		return &Tx{KV: []KVWrite{{Bucket: "g", Key: key, Value: value, Check: true, ExpectedPresent: present, Expected: want}}}
	}
	refused := cas("j", false, "", "from a refused tx")
	refused.Appends = []Append{{ExecutionID: "E_missing", ExpectedVersion: 3, Events: []*pb.Event{gPersist(1)}}}
	errs := group(s,
		cas("k", false, "", "1"),
		cas("k", false, "", "1"), // absent no more
		cas("k", true, "1", "2"),
		&Tx{KVChecks: []KVCheck{{Bucket: "g", Key: "k", ExpectedPresent: true, Expected: "1"}}}, // stale
		&Tx{KVChecks: []KVCheck{{Bucket: "g", Key: "k", ExpectedPresent: true, Expected: "2"}}},
		refused, // its KV part holds, its append does not
		cas("j", false, "", "1"),
		&Tx{KV: []KVWrite{{Bucket: "g", Key: "k", Delete: true}}},
		cas("k", false, "", "3"),
	)
	for i, want := range []string{"", "conflict", "", "conflict", "", "not found", "", "", ""} {
		switch {
		case want == "" && errs[i] != nil:
			t.Fatalf("tx %d: %v", i, errs[i])
		case want == "conflict" && !errors.Is(errs[i], ErrConflict):
			t.Fatalf("tx %d: %v, want a conflict", i, errs[i])
		case want == "not found" && !errors.Is(errs[i], ErrNotFound):
			t.Fatalf("tx %d: %v, want not found", i, errs[i])
		}
	}
	if v, ok := kvGet(t, s, "g", "k"); v != "3" || !ok {
		t.Fatalf("k = %q %v, want 3", v, ok)
	}
	// The refused tx's write to j neither landed nor blocked the later absent check.
	if v, ok := kvGet(t, s, "g", "j"); v != "1" || !ok {
		t.Fatalf("j = %q %v, want 1", v, ok)
	}
}

// TestKVConcurrentCAS: increments by compare-and-set from concurrent committers, retried
// on conflict, are neither lost nor doubled, whatever groups the writer forms.
func TestKVConcurrentCAS(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	const workers, each = 8, 30
	var mu sync.Mutex
	succeeded, conflicts := 0, 0
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < each; {
				v, ok, err := s.KVGet(ctx, "counter", "n")
				if err != nil {
					errc <- err
					return
				}
				n := 0
				if ok {
					if n, err = strconv.Atoi(v); err != nil {
						errc <- err
						return
					}
				}
				_, err = s.Commit(ctx, &Tx{KV: []KVWrite{{Bucket: "counter", Key: "n", Value: strconv.Itoa(n + 1), Check: true, ExpectedPresent: ok, Expected: v}}})
				mu.Lock()
				switch {
				case err == nil:
					succeeded++
					done++
				case errors.Is(err, ErrConflict):
					conflicts++
				default:
					mu.Unlock()
					errc <- err
					return
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	v, _ := kvGet(t, s, "counter", "n")
	if v != strconv.Itoa(succeeded) || succeeded != workers*each {
		t.Fatalf("counter %s after %d successful increments (%d conflicts), want %d", v, succeeded, conflicts, workers*each)
	}
	t.Logf("%d increments, %d conflicts retried", succeeded, conflicts)
}

func TestKVReopen(t *testing.T) {
	dir := t.TempDir()
	s := gOpen(t, dir)
	gCommit(t, s, &Tx{KV: []KVWrite{kvSet("b", "k1", "v1"), kvSet("b", "k2", "v2"), kvSet("c", "k", "v")}})
	gCommit(t, s, &Tx{KV: []KVWrite{{Bucket: "b", Key: "k2", Delete: true}}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = gOpen(t, dir)
	got, next, err := s.KVList(context.Background(), "b", "", "", 0)
	if err != nil || next != "" || len(got) != 1 || got[0] != (KVEntry{"k1", "v1"}) {
		t.Fatalf("after reopening, b holds %v (next %q, %v), want k1=v1", got, next, err)
	}
	if v, ok := kvGet(t, s, "c", "k"); v != "v" || !ok {
		t.Fatalf("after reopening, c/k = %q %v", v, ok)
	}
	// A check against what was read back holds.
	gCommit(t, s, &Tx{KVChecks: []KVCheck{{Bucket: "b", Key: "k1", ExpectedPresent: true, Expected: "v1"}, {Bucket: "b", Key: "k2"}}})
}

func TestKVBounds(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	long := func(n int) string { return strings.Repeat("k", n) }
	tests := []struct {
		name   string
		w      KVWrite
		checks []KVCheck
		err    string // "" = accepted
	}{
		{"empty bucket", kvSet("", "k", "v"), nil, "bucket is empty"},
		{"bucket at the limit", kvSet(long(MaxKVBucketBytes), "k", "v"), nil, ""},
		{"bucket too long", kvSet(long(MaxKVBucketBytes+1), "k", "v"), nil, "bucket is 129 bytes, more than the limit of 128"},
		{"bucket with NUL", kvSet("a\x00b", "k", "v"), nil, "bucket contains a NUL byte"},
		{"bucket not UTF-8", kvSet("a\xffb", "k", "v"), nil, "bucket is not valid UTF-8"},
		{"empty key", kvSet("b", "", "v"), nil, "key is empty"},
		{"key at the limit", kvSet("b", long(MaxKVKeyBytes), "v"), nil, ""},
		{"key too long", kvSet("b", long(MaxKVKeyBytes+1), "v"), nil, "key is 1025 bytes, more than the limit of 1024"},
		{"key not UTF-8", kvSet("b", "\xc3", "v"), nil, "key is not valid UTF-8"},
		{"value at the limit", kvSet("b", "big", long(MaxKVValueBytes)), nil, ""},
		{"value too long", kvSet("b", "big2", long(MaxKVValueBytes+1)), nil, "value is 1048577 bytes, more than the limit of 1048576"},
		{"delete of an empty key", KVWrite{Bucket: "b", Delete: true}, nil, "kv delete"},
		{"bad check", kvSet("b", "k", "v"), []KVCheck{{Bucket: "b"}}, "kv check \"b\"/\"\": key is empty"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := NewExecutionID(time.Unix(0, int64(i+1)))
			tx := execTx(id, []KVWrite{kvSet("b", "sibling", tt.name), tt.w}, tt.checks)
			_, err := s.Commit(ctx, tx)
			_, stErr := s.State(ctx, id)
			sib, sibOK := kvGet(t, s, "b", "sibling")
			if tt.err == "" {
				if err != nil || stErr != nil || sib != tt.name {
					t.Fatalf("commit: %v; state: %v; sibling %q", err, stErr, sib)
				}
				if v, _, err := s.KVGet(ctx, tt.w.Bucket, tt.w.Key); err != nil || v != tt.w.Value {
					t.Fatalf("stored value of %d bytes read back as %d bytes, %v", len(tt.w.Value), len(v), err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("commit: %v, want invalid argument saying %q", err, tt.err)
			}
			if !errors.Is(stErr, ErrNotFound) || (sibOK && sib == tt.name) {
				t.Fatalf("the refused Tx wrote: state %v, sibling %q", stErr, sib)
			}
		})
	}

	// Reads refuse what no write could have stored.
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"get empty key", func() error { _, _, err := s.KVGet(ctx, "b", ""); return err }()},
		{"get bucket with NUL", func() error { _, _, err := s.KVGet(ctx, "b\x00", "k"); return err }()},
		{"list empty bucket", func() error { _, _, err := s.KVList(ctx, "", "", "", 0); return err }()},
		{"list prefix too long", func() error { _, _, err := s.KVList(ctx, "b", long(MaxKVKeyBytes+1), "", 0); return err }()},
		{"list cursor not UTF-8", func() error { _, _, err := s.KVList(ctx, "b", "", "\xff", 0); return err }()},
	} {
		if !errors.Is(tt.err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want invalid argument", tt.name, tt.err)
		}
	}
}

// TestKVSurvivesRetention: KV entries belong to no execution, even when their bucket or
// key is an execution's ID, so deleting a tree leaves them.
func TestKVSurvivesRetention(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	root, child := rTree(t, s, 100, true)
	gCommit(t, s, &Tx{KV: []KVWrite{kvSet(root, "k", "1"), kvSet("b", root, "2"), kvSet("b", child, "3")}})
	if d, err := s.DeleteTrees(ctx, []string{root}); err != nil || d.Trees != 1 {
		t.Fatalf("delete: %+v %v", d, err)
	}
	if err := s.CompactDeleted(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct{ bucket, key, want string }{{root, "k", "1"}, {"b", root, "2"}, {"b", child, "3"}} {
		if v, ok := kvGet(t, s, e.bucket, e.key); v != e.want || !ok {
			t.Fatalf("%s/%s after retention: %q %v, want %q", e.bucket, e.key, v, ok, e.want)
		}
	}
}
