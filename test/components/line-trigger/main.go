// Command line-trigger is a trigger: it reads lines from an HTTP stream as they arrive
// and calls testing:fibo/fibo.fibo once per line, with an execution ID derived from the
// line, so that a restarted trigger that reads the same lines again submits nothing
// twice. A line is "<anything> <n>": fibo(n) is called.
//
// It is configured by the read-only KV bucket "line-trigger" (a [[kv_config]]): key
// "url", the stream's URL, and key "trap_after", a line count after which the trigger
// panics once (the key-value store's bucket "line-trigger-state" remembers that it did:
// later runs do not).
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o line-trigger.wasm ./test/components/line-trigger
package main

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskhttp"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskkv"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obelisktrigger"
)

func init() {
	obelisktrigger.Main(run)
}

func run(ctx obelisk.Context) error {
	url, err := setting(ctx, "url")
	if err != nil {
		return err
	}
	trapAfter := -1
	if s, err := setting(ctx, "trap_after"); err == nil {
		if trapAfter, err = strconv.Atoi(s); err != nil {
			return fmt.Errorf("trap_after %q: %w", s, err)
		}
	}
	ctx.Log(obelisk.LevelInfo, fmt.Sprintf("run %d: reading %s", obelisktrigger.Run(ctx), url))
	resp, err := obeliskhttp.StreamingClient(ctx).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	lines := bufio.NewScanner(resp.Body)
	for count := 1; lines.Scan(); count++ {
		line := lines.Text()
		_, arg, _ := strings.Cut(line, " ")
		n, err := strconv.ParseUint(arg, 10, 8)
		if err != nil {
			ctx.Log(obelisk.LevelWarn, fmt.Sprintf("skipping line %q: %v", line, err))
			continue
		}
		id := obelisktrigger.DerivedID("line-trigger", line)
		v, err := obelisk.CallWithID[uint64](ctx, id, "testing:fibo/fibo.fibo", n)
		if err != nil {
			return fmt.Errorf("line %q: %w", line, err)
		}
		ctx.Log(obelisk.LevelInfo, fmt.Sprintf("line %q: %s fibo(%d) = %d", line, id, n, v))
		if count == trapAfter {
			// Once: the first run to get here records it, and panics.
			first, err := obeliskkv.CAS(ctx, "line-trigger-state", "trapped", nil, "yes")
			if err != nil {
				return err
			}
			if first {
				panic(fmt.Sprintf("line-trigger: the injected trap after line %d", count))
			}
		}
	}
	if err := lines.Err(); err != nil {
		return err
	}
	return errors.New("the stream ended")
}

// setting reads key of the read-only bucket "line-trigger".
func setting(ctx obelisk.Context, key string) (string, error) {
	v, found, err := obeliskkv.Get(ctx, "line-trigger", key)
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", key, err)
	}
	if !found {
		return "", fmt.Errorf("setting %s: the bucket line-trigger has no key %q", key, key)
	}
	return v, nil
}

func main() {}
