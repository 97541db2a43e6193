package actors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/obelisk-go/obelisk/events"
)

// Retention deletes the trees of top-level executions that finished long enough ago
// (Config.RetentionFinishedAfter, ComponentConfig.RetentionFinishedAfter by the root's
// component), as a supervised service: each pass asks the store for the finished trees
// past their cutoff and deletes them a batch at a time (events.PebbleStore.DeleteTrees,
// whose deletions are all-or-nothing as reads see them and resumable after a crash),
// then compacts what it deleted so that the space comes back. A restarted pass simply
// lists again: deleted trees are no longer listed, interrupted ones are listed first.

// retentionStartDelay holds the first pass back after the engine starts: after a
// restart, recovering and running what was pending comes first; deleting old trees is
// never urgent.
const retentionStartDelay = 5 * time.Second

// retentionBatch is how many trees one DeleteTrees takes: a few hundred keep each of its
// writer steps short (foreground commits wait for one step at most) while sharing
// the final sync.
const retentionBatch = 256

type retention struct {
	e     *Engine
	wake  wakeup
	start time.Time // no pass before (retentionStartDelay)
	// def applies to components without an override; 0 keeps their trees.
	def    time.Duration
	byName map[string]time.Duration // component name -> its finished_after
	// sweepsCache: a component has a result cache (exec.cache_ttl), whose expired
	// entries the passes delete too.
	sweepsCache bool
}

func newRetention(e *Engine, cfg Config) *retention {
	r := &retention{e: e, start: time.Now().Add(retentionStartDelay), def: cfg.RetentionFinishedAfter, byName: map[string]time.Duration{}}
	if cfg.retentionNow {
		r.start = time.Time{}
	}
	for _, c := range cfg.Components {
		if c.RetentionFinishedAfter > 0 {
			r.byName[c.Name] = c.RetentionFinishedAfter
		}
		r.sweepsCache = r.sweepsCache || c.CacheTTL > 0
	}
	return r
}

// enabled reports whether any tree may ever be deleted by a pass.
func (r *retention) enabled() bool { return r.def > 0 || len(r.byName) > 0 }

// runs reports whether the service runs: to delete trees, or cache entries.
func (r *retention) runs() bool { return r.enabled() || r.sweepsCache }

// sweepCache deletes the result cache's expired entries, a bounded step at a time.
func (r *retention) sweepCache(ctx context.Context) {
	const step = 1024
	for n := step; n == step && ctx.Err() == nil; {
		var err error
		if n, err = r.e.store.SweepCache(ctx, time.Now(), step); err != nil {
			if ctx.Err() == nil {
				r.e.log.Error("retention: delete expired result cache entries", "err", err)
			}
			return
		}
	}
}

// after returns the finished_after of a component (by its ID,
// <type>:<name>:sha256:<hex>), 0 if its trees are kept.
func (r *retention) after(componentID string) time.Duration {
	parts := strings.SplitN(componentID, ":", 3)
	if len(parts) >= 2 {
		if d, ok := r.byName[parts[1]]; ok {
			return d
		}
	}
	return r.def
}

// cutoffs returns, for a pass at now, the time before which a component's trees must
// have finished.
func (r *retention) cutoffs(now time.Time) func(string) time.Time {
	return func(componentID string) time.Time {
		d := r.after(componentID)
		if d <= 0 {
			return time.Unix(0, 0) // kept: nothing finished before 1970
		}
		return now.Add(-d)
	}
}

// due lists up to limit trees that a pass at now would delete, oldest first.
func (r *retention) due(ctx context.Context, now time.Time, limit int) ([]events.FinishedTree, error) {
	var out []events.FinishedTree
	err := r.e.store.FinishedTrees(ctx, r.cutoffs(now), func(t events.FinishedTree) (bool, error) {
		out = append(out, t)
		return len(out) < limit, nil
	})
	return out, err
}

// pass deletes every tree due now, a batch at a time, as one listing finds them: the
// listing goes on after each batch from where it was, instead of starting again at the
// index's beginning, whose deleted entries it would skip again every time (a pass over
// 100,000 trees is 400 batches).
func (r *retention) pass(ctx context.Context) time.Time {
	if time.Now().Before(r.start) {
		return r.start
	}
	if r.sweepsCache {
		r.sweepCache(ctx)
	}
	if !r.enabled() {
		return time.Time{}
	}
	started := time.Now()
	bg := background(r.e.store)
	var deleted events.Deleted
	var batch []string
	deleteBatch := func() error {
		r.e.hook("retention", "delete")
		d, err := r.e.store.DeleteTrees(ctx, batch)
		batch = batch[:0]
		r.e.cfg.Metrics.Deleted(d.Trees, d.Executions, d.Events)
		deleted.Trees += d.Trees
		deleted.Executions += d.Executions
		deleted.Events += d.Events
		for root, why := range d.Refused {
			// Listed as finished, refused as not: something in it started meanwhile.
			r.e.log.Debug("retention: tree not deleted", "root", root, "reason", why)
		}
		if err != nil {
			return fmt.Errorf("delete finished trees: %w", err)
		}
		return nil
	}
	err := r.e.store.FinishedTrees(ctx, r.cutoffs(time.Now()), func(t events.FinishedTree) (bool, error) {
		batch = append(batch, t.Root)
		if len(batch) < retentionBatch {
			return true, nil
		}
		return ctx.Err() == nil, deleteBatch()
	})
	if err == nil && len(batch) > 0 {
		err = deleteBatch()
	}
	if err != nil && ctx.Err() == nil {
		r.e.log.Error("retention: delete finished trees", "err", err)
	}
	if deleted.Trees > 0 {
		took := time.Since(started)
		after := background(r.e.store)
		r.e.log.Info("retention: deleted finished execution trees", "trees", deleted.Trees,
			"executions", deleted.Executions, "events", deleted.Events, "took", took,
			"flushes", after.Flushes-bg.Flushes, "compactions", after.Compactions-bg.Compactions,
			"flushed_mib", float64(after.FlushedBytes-bg.FlushedBytes)/(1<<20),
			"compacted_mib", float64(after.CompactedBytes-bg.CompactedBytes)/(1<<20))
		compacting := time.Now()
		if err := r.e.store.CompactDeleted(ctx); err != nil && ctx.Err() == nil {
			r.e.log.Error("retention: compact what was deleted", "err", err)
		} else {
			r.e.log.Info("retention: compacted what was deleted", "took", time.Since(compacting))
		}
	}
	return time.Time{} // the next pass at the safety tick
}

// background returns the store's background work so far, if it tells it (a Pebble
// store does; a replicated one need not).
func background(s events.Store) events.Background {
	if b, ok := s.(interface{ Background() events.Background }); ok {
		return b.Background()
	}
	return events.Background{}
}

// Delete deletes a finished top-level execution with its whole tree now.
func (e *Engine) Delete(ctx context.Context, id string) (events.Deleted, error) {
	d, err := e.store.DeleteTrees(ctx, []string{id})
	if err != nil {
		return d, err
	}
	e.cfg.Metrics.Deleted(d.Trees, d.Executions, d.Events)
	if why := d.Refused[id]; why != nil {
		if errors.Is(why, events.ErrNotFound) {
			return d, &NotFoundError{id}
		}
		return d, &FailedPreconditionError{why.Error()}
	}
	return d, nil
}

// RetentionDue lists up to limit trees the next retention pass would delete, oldest
// first (none while retention is off).
func (e *Engine) RetentionDue(ctx context.Context, limit int) ([]events.FinishedTree, error) {
	if !e.retention.enabled() {
		return nil, &FailedPreconditionError{"retention is off: set [retention] finished_after (or retention.finished_after on a component)"}
	}
	return e.retention.due(ctx, time.Now(), limit)
}
