// Command fibo-webhook is a webhook endpoint: an HTTP handler that calls the
// fibo workflow. It also serves a few routes the end-to-end tests use (a
// constant, the size of the body, a call of the sleep activity, a panic, a
// slow handler, a wildcard, a schedule); which of them a deployment exposes is
// up to the routes of its [[webhook_endpoint]].
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fibo-webhook.wasm ./test/components/fibo-webhook
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskwebhook"
)

func init() {
	obeliskwebhook.HandleFunc(handle)
}

func handle(w http.ResponseWriter, r *http.Request) {
	first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch first {
	case "fibo":
		fibo(w, r)
	case "const":
		// Nothing durable: the request leaves no execution behind. The body, if any,
		// is never read.
		fmt.Fprint(w, "constant")
	case "size":
		size(w, r)
	case "sleep":
		sleep(w, r)
	case "panic":
		panic("boom: " + r.URL.Path)
	case "spin":
		millis, _ := strconv.Atoi(r.PathValue("millis"))
		time.Sleep(time.Duration(millis) * time.Millisecond)
		fmt.Fprint(w, "done")
	case "schedule":
		schedule(w, r)
	default:
		// A wildcard route, e.g. "/status/*": echo what the host matched.
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s rest=%q query=%q", r.Method, r.URL.Path, obeliskwebhook.Param(r, "*"), r.URL.RawQuery)
	}
}

// fibo serves "GET /fibo/:n/:iterations": it calls the fiboa workflow, which
// calls the fibo activity `iterations` times, and answers the sum as text.
func fibo(w http.ResponseWriter, r *http.Request) {
	n, err1 := strconv.ParseUint(r.PathValue("n"), 10, 8)
	iterations, err2 := strconv.ParseUint(r.PathValue("iterations"), 10, 32)
	if err1 != nil || err2 != nil {
		http.Error(w, "want /fibo/<n: u8>/<iterations: u32>", http.StatusBadRequest)
		return
	}
	v, err := obelisk.Call[uint64](obeliskwebhook.Context(r), "testing:fibo-workflow/workflow.fiboa", uint8(n), uint32(iterations))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, v)
}

// size serves "/size": it reads the whole body and answers its length as the
// request announced it, the length read, and its SHA-256.
func size(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%d %d %x", r.ContentLength, n, h.Sum(nil))
}

// sleep serves "/sleep/:millis": it calls the sleep activity.
func sleep(w http.ResponseWriter, r *http.Request) {
	millis, err := strconv.ParseUint(r.PathValue("millis"), 10, 64)
	if err != nil {
		http.Error(w, "want /sleep/<millis>", http.StatusBadRequest)
		return
	}
	if err := obelisk.CallVoid(obeliskwebhook.Context(r), "testing:sleep/sleep.sleep", millis); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	fmt.Fprint(w, "slept")
}

// schedule serves "/schedule/:n": it schedules fiboa(n, 1) without waiting,
// then calls fiboa(n, 1) itself, and answers the scheduled execution's ID and
// status as it was after the schedule, and the result of the call.
func schedule(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseUint(r.PathValue("n"), 10, 8)
	if err != nil {
		http.Error(w, "want /schedule/<n: u8>", http.StatusBadRequest)
		return
	}
	ctx := obeliskwebhook.Context(r)
	id, err := obelisk.Schedule(ctx, obelisk.Now(), "testing:fibo-workflow/workflow.fiboa", uint8(n), uint32(1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	st, err := obeliskwebhook.GetStatus(ctx, id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	v, err := obelisk.Call[uint64](ctx, "testing:fibo-workflow/workflow.fiboa", uint8(n), uint32(1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "%s %s %d", id, st.Status, v)
}

func main() {}
