// Command kv-activity is a test-only activity that calls the built-in KV store
// directly (not through child executions).
package main

import (
	"errors"

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
}

func main() {}
