package worker_test

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"strings"

	"github.com/obelisk-go/obelisk/worker"
)

// A worker that answers the executions of an activity stub,
// answer: func(question: string) -> result<u64, string>, with the number of words of the
// question, until it is interrupted.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	w := worker.New("http://127.0.0.1:5005", worker.Options{Name: "words", Token: os.Getenv("OBELISK_API_TOKEN")})
	err := w.Run(ctx, map[string]worker.Handler{
		"testing:stub/stub.answer": func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
			var p []string // one element per parameter
			if err := json.Unmarshal(params, &p); err != nil {
				return nil, err // a failure: retried
			}
			if strings.TrimSpace(p[0]) == "" {
				return nil, worker.Err("an empty question") // the err value of the result
			}
			return json.Marshal(len(strings.Fields(p[0])))
		},
	})
	if err != nil {
		os.Exit(1)
	}
}
