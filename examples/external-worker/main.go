// Command external-worker does the executions of an activity stub outside the server,
// with package worker: it answers answer(question) of testing:stub/stub.answer with the
// number of words of the question. See README.md beside it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/obelisk-go/obelisk/worker"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:5005", "the server's API URL")
	name := flag.String("name", "words", "the worker's name, recorded in the executions' events")
	ffqn := flag.String("ffqn", "testing:stub/stub.answer", "the function done: func(question: string) -> result<u64, string>")
	labels := flag.String("labels", "", "the worker's labels, comma-separated")
	lock := flag.Duration("lock", 0, "how long a lock lasts unless renewed (0: the server's default)")
	concurrency := flag.Int("concurrency", 1, "executions done at once")
	slow := flag.Duration("slow", 0, "how long each answer takes (to watch the lock being renewed, or to stop the worker mid-activity)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var ls []string
	if *labels != "" {
		ls = strings.Split(*labels, ",")
	}
	w := worker.New(*api, worker.Options{
		Name: *name, Token: os.Getenv("OBELISK_API_TOKEN"), Labels: ls, LockDuration: *lock,
		Concurrency: *concurrency, Logger: log,
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := w.Run(ctx, map[string]worker.Handler{*ffqn: func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
		var p []string
		if err := json.Unmarshal(params, &p); err != nil || len(p) != 1 {
			return nil, fmt.Errorf("parameters %s: want [question]", params)
		}
		task, _ := worker.TaskFrom(ctx)
		// With tracing on in the server, ctx carries the attempt's span (task.TraceParent):
		// spans started under it, and an instrumented HTTP client's requests, join the
		// execution's trace.
		log.Info("answering", "execution", task.ExecutionID, "attempt", task.Attempt, "question", p[0], "traceparent", task.TraceParent)
		if *slow > 0 {
			select {
			case <-time.After(*slow):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if strings.TrimSpace(p[0]) == "" {
			return nil, worker.Err("an empty question")
		}
		return json.Marshal(len(strings.Fields(p[0])))
	}})
	if err != nil {
		log.Error("worker stopped", "err", err)
		os.Exit(1)
	}
}
