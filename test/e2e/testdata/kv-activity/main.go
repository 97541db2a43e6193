// Command kv-activity is a test-only activity that calls the built-in KV store
// directly (not through child executions).
package main

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskkv"
)

func init() {
	obelisk.Export("testing:kv-activity/activity.set-get", func(ctx obelisk.Context, bucket, key, value string) (string, error) {
		if err := obeliskkv.Set(ctx, bucket, key, value); err != nil {
			return "", err
		}
		v, found, err := obeliskkv.Get(ctx, bucket, key)
		if err != nil {
			return "", err
		}
		if !found {
			return "", obelisk.Err("not found after set")
		}
		return v, nil
	})
	obelisk.Export("testing:kv-activity/activity.try-set", func(ctx obelisk.Context, bucket, key, value string) (string, error) {
		err := obeliskkv.Set(ctx, bucket, key, value)
		var kvErr *obeliskkv.Error
		if errors.As(err, &kvErr) {
			return kvErr.Kind + ": " + kvErr.Message, nil
		}
		if err != nil {
			return "", err
		}
		return "ok", nil
	})
	obelisk.Export("testing:kv-activity/activity.bench", func(ctx obelisk.Context, bucket string, n uint32) (string, error) {
		sets := make([]time.Duration, 0, n)
		gets := make([]time.Duration, 0, n)
		start := time.Now()
		for i := range n {
			k := strconv.FormatUint(uint64(i), 10)
			t := time.Now()
			if err := obeliskkv.Set(ctx, bucket, k, "v"+k); err != nil {
				return "", err
			}
			sets = append(sets, time.Since(t))
		}
		for i := range n {
			k := strconv.FormatUint(uint64(i), 10)
			t := time.Now()
			v, found, err := obeliskkv.Get(ctx, bucket, k)
			if err != nil {
				return "", err
			}
			if !found || v != "v"+k {
				return "", obelisk.Err("key " + k + " read back wrong")
			}
			gets = append(gets, time.Since(t))
		}
		elapsed := time.Since(start)
		pct := func(d []time.Duration, p int) int64 {
			slices.Sort(d)
			return d[len(d)*p/100].Microseconds()
		}
		b, _ := json.Marshal(map[string]any{
			"set_p50_us": pct(sets, 50), "set_p99_us": pct(sets, 99),
			"get_p50_us": pct(gets, 50), "get_p99_us": pct(gets, 99),
			"ops_per_s": float64(2*n) / elapsed.Seconds(),
		})
		return string(b), nil
	})
}

func main() {}
