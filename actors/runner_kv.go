package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/obelisk-go/obelisk/actors/internal/kv"
	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// The built-in key-value component, obelisk:kv/store: the first native component (no
// WASM), run by its runner like any activity.
//
// Its data lives in the event store (events/kv.go), and every write commits with the
// outcome of the execution that made it, in one Tx: a run that dies before that commit
// wrote nothing, and the retry decides again. A run reads, decides, and commits with a
// check that what it read is still there (events.KVCheck); when another write came
// between, the commit fails as a whole and the run decides again on the new value. So
// cas is exact, however many runs race, and a workflow that calls it records one answer
// that replay reuses, never a second write.
//
// Workflows call it as child executions (recorded and replayed); activities and
// webhook endpoints call it directly through the kv host op (abi.OpKV), which commits
// the write alone. A bucket of config (ComponentConfig.KVConfig) answers get and list
// from its TOML file and refuses writes.

// KVComponentName is the name of the built-in KV component; no configured component
// may take it.
const KVComponentName = "obelisk_kv"

// kvWIT is the WIT of the built-in KV component.
const kvWIT = `package obelisk:kv;

/// A durable key-value store kept in the engine's store. Buckets and keys are UTF-8
/// strings (a bucket 1-128 bytes without NUL, a key 1-1024 bytes), values strings up
/// to 1 MiB. Buckets declared as config ([[kv_config]]) are read-only.
interface store {
    variant kv-error {
        /// A write to a bucket that is read-only (a config bucket).
        read-only(string),
        /// A bucket, key or value out of bounds, or a config file that cannot be read.
        invalid(string),
    }

    record entry {
        key: string,
        value: string,
    }

    /// A page of list: entries in key order, and the cursor of the next page.
    record page {
        entries: list<entry>,
        cursor: option<string>,
    }

    /// The value of key, none if it is not set.
    get: func(bucket: string, key: string) -> result<option<string>, kv-error>;
    /// Sets key to value.
    set: func(bucket: string, key: string, value: string) -> result<_, kv-error>;
    /// Deletes key (nothing if it is not set).
    delete: func(bucket: string, key: string) -> result<_, kv-error>;
    /// Up to limit entries (0: 100; at most 1000) whose keys start with prefix, after
    /// cursor (the cursor of the previous page; none: from the first).
    list: func(bucket: string, prefix: string, cursor: option<string>, limit: u32) -> result<page, kv-error>;
    /// Sets key to value if its value is expected (none: if it is not set), and says
    /// whether it did.
    cas: func(bucket: string, key: string, expected: option<string>, value: string) -> result<bool, kv-error>;
}

world kv {
    export store;
}
`

// kvComponentConfig is the configuration of the built-in KV component.
func kvComponentConfig() ComponentConfig {
	return ComponentConfig{
		Name: KVComponentName, Type: ActivityNative, WIT: kvWIT,
		LockExpiry: 10 * time.Second, MaxRetries: 5, RetryExpBackoff: 100 * time.Millisecond,
		MaxConcurrency: 100,
	}
}

// KVConfigBucket is a read-only bucket of the built-in KV component whose entries are
// the keys of a TOML file (Config.KVConfig).
type KVConfigBucket struct {
	Bucket string
	// Path of the TOML file. Its keys are the bucket's keys: a nested table's keys are
	// joined with dots ("db.host"), strings are their own value, anything else its
	// JSON ("5432", "true", "[1,2]"). The file is read again when it changes.
	Path string
}

// kvRunner runs the executions of the built-in KV component.
type kvRunner struct{ e *Engine }

func (kvRunner) prepare(context.Context, *run) error { return nil }

func (kr kvRunner) run(ctx context.Context, r *run) {
	e := kr.e
	created := r.created
	if created == nil {
		var err error
		if created, err = e.createdOf(ctx, r.id); err != nil {
			e.log.Error("kv: read created", "execution", r.id, "err", err)
			return
		}
	}
	fn := strings.TrimPrefix(created.Ffqn, abi.KVInterface+".")
	_, err := e.kvApply(ctx, fn, created.Params, func(d kv.Decision) error {
		_, err := e.change(ctx, r.id, func(st *pb.ExecutionState) (*events.Tx, error) {
			if st == nil || st.Status != pb.Status_STATUS_LOCKED || st.RunId != r.runID {
				return nil, nil // the lock expired meanwhile; the timer service has dealt with it
			}
			tx := e.finishTx(st, d.Result, time.Now())
			tx.Appends[0].RunID = r.runID
			tx.KVChecks, tx.KV = d.Checks, d.Writes
			return tx, nil
		})
		return err
	})
	if err != nil && ctx.Err() == nil {
		// The store's failure: the lock expires and the attempt is retried.
		e.log.Warn("kv: run", "execution", r.id, "err", err)
	}
}

// kvDirect answers the kv host op of an activity or a webhook endpoint: the function
// runs at once, its writes committed alone.
func (e *Engine) kvDirect(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.KVRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "kv: %v", err)
	}
	if !kv.IsFunction(q.Fn) {
		return nil, hostErr(abi.KindBadRequest, "kv: unknown function %q (want get, set, delete, list or cas)", q.Fn)
	}
	fn := e.reg.byFFQN[abi.KVInterface+"."+q.Fn]
	params, err := e.checkedParams(fn, q.Params, true)
	if err != nil {
		return nil, err
	}
	d, err := e.kvApply(ctx, q.Fn, params, func(d kv.Decision) error {
		if len(d.Writes) == 0 {
			return nil // a read, or a cas that found another value: nothing to write
		}
		_, err := e.store.Commit(ctx, &events.Tx{KVChecks: d.Checks, KV: d.Writes})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", q.Fn, err)
	}
	return d.Result, nil
}

// kvApply runs function fn of the KV component with params: it decides on the values
// the store has now, and commit writes the decision (with the checks that what it read
// is still there); while a check fails, another write came between, and it decides
// again.
func (e *Engine) kvApply(ctx context.Context, fn string, params []byte, commit func(kv.Decision) error) (kv.Decision, error) {
	for {
		d, err := kv.Decide(ctx, e.store, e.kvConfig, fn, params)
		if err != nil {
			return d, err
		}
		err = commit(d)
		var kc *events.KVConflictError
		if errors.As(err, &kc) && ctx.Err() == nil {
			continue
		}
		return d, err
	}
}
