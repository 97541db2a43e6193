// Package metrics owns the engine's Prometheus metrics: what they are called, what they
// count, and the registry they live in. The engine and the store report through a
// *Metrics (nil reports nothing); the server exposes Registry at /metrics.
//
// Gauges that describe the engine's state right now (executions by status, resident
// instances) are computed when they are scraped, from functions the engine registers:
// keeping them up to date on every commit would cost the hot path for a number read
// every few seconds.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the engine's collectors. Its methods are safe on a nil *Metrics.
type Metrics struct {
	// Registry holds every collector below plus the Go runtime and process collectors.
	Registry *prometheus.Registry

	commits        prometheus.Counter
	commitTxs      prometheus.Histogram
	commitWrites   prometheus.Counter
	commitDuration prometheus.Histogram
	instanceStarts *prometheus.HistogramVec
	attempts       *prometheus.CounterVec
	finished       *prometheus.CounterVec
	timerLag       *prometheus.HistogramVec
	restarts       *prometheus.CounterVec
	deleted        *prometheus.CounterVec
	lockRenewals   *prometheus.CounterVec
	triggerRuns    *prometheus.CounterVec
	retryBudget    *prometheus.CounterVec
	scheduleFires  *prometheus.CounterVec
	rejected       *prometheus.CounterVec
}

// New makes the collectors and registers them in a new registry.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	latency := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m.commits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "obelisk_store_group_commits_total", Help: "Durable group commits of the event store.",
	})
	m.commitTxs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "obelisk_store_group_commit_transactions", Help: "Transactions per group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	m.commitWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "obelisk_store_writes_total", Help: "Key writes (events, responses, indexes, states) committed.",
	})
	m.commitDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "obelisk_store_commit_seconds", Help: "Duration of a group commit's write and sync.", Buckets: latency,
	})
	m.instanceStarts = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "obelisk_instance_start_seconds", Help: "WASM instance starts and their duration, by kind (activity, workflow).", Buckets: latency,
	}, []string{"kind"})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "obelisk_activity_attempts_total", Help: "Activity attempts by outcome (ok, err, retried_err, retried_failure, timed_out, retried_timeout, retried_memory, failed, deadline_exceeded: the execution's deadline cut it or passed before its retry, cached: served from the result cache).",
	}, []string{"outcome"})
	m.finished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "obelisk_executions_finished_total", Help: "Executions finished, by component type and result kind.",
	}, []string{"type", "result"})
	m.timerLag = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "obelisk_timer_lag_seconds", Help: "How late timers fired after they were due, by timer (delay, lock, deadline).", Buckets: latency,
	}, []string{"timer"})
	m.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "obelisk_supervisor_restarts_total", Help: "Restarts of supervised engine services (timers, delays, deadlines, canceller, keepalives, retention, executor:<component>) after a panic, by service.",
	}, []string{"service"})
	m.deleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "obelisk_retention_deleted_total", Help: "What retention and execution delete removed, by what (trees, executions, events).",
	}, []string{"what"})
	for _, w := range []string{"trees", "executions", "events"} {
		m.deleted.WithLabelValues(w) // exist at 0 from the start
	}
	m.lockRenewals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "obelisk_activity_lock_renewals_total", Help: "Lock renewals of kept-alive activity attempts by outcome (ok, lost: the run no longer held the lock and was killed, failed: the commit failed).",
	}, []string{"outcome"})
	m.triggerRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "obelisk_trigger_restarts_total", Help: "Restarts of triggers after their run ended, by trigger and why it ended (returned, err, trapped, failed).",
	}, []string{"trigger", "outcome"})
	m.retryBudget = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "obelisk_retry_budget_held_total", Help: "Retries that an exhausted retry budget delayed (action wait) or skipped (action skip), by component.",
	}, []string{"component", "action"})
	m.scheduleFires = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "obelisk_schedule_firings_total", Help: "Firings of periodic schedules, by schedule and outcome (submitted: an execution was created; failed: it could not be, e.g. the function is no longer deployed).",
	}, []string{"schedule", "outcome"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "obelisk_submissions_rejected_total", Help: "Submissions refused with resource_exhausted because a queue held max_pending pending executions, by queue and by limit (queue: its exec.max_pending or [[queue]] max_pending; server: server.max_pending).",
	}, []string{"queue", "limit"})
	m.Registry.MustRegister(m.commits, m.commitTxs, m.commitWrites, m.commitDuration, m.instanceStarts, m.attempts, m.finished, m.timerLag, m.restarts, m.deleted, m.lockRenewals, m.triggerRuns, m.retryBudget, m.scheduleFires, m.rejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// GroupCommit records one durable group commit.
func (m *Metrics) GroupCommit(txs, writes int, took time.Duration) {
	if m == nil {
		return
	}
	m.commits.Inc()
	m.commitTxs.Observe(float64(txs))
	m.commitWrites.Add(float64(writes))
	m.commitDuration.Observe(took.Seconds())
}

// InstanceStart records an instance start of the given kind.
func (m *Metrics) InstanceStart(kind string, took time.Duration) {
	if m == nil {
		return
	}
	m.instanceStarts.WithLabelValues(kind).Observe(took.Seconds())
}

// ActivityAttempt records the outcome of one activity attempt.
func (m *Metrics) ActivityAttempt(outcome string) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(outcome).Inc()
}

// RetryBudget records a retry that a component's exhausted retry budget held back
// (action "wait") or skipped ("skip").
func (m *Metrics) RetryBudget(component, action string) {
	if m == nil {
		return
	}
	m.retryBudget.WithLabelValues(component, action).Inc()
}

// SubmissionRejected records a submission to queue refused because of a pending limit:
// limit is "queue" (the queue's max_pending) or "server" (server.max_pending).
func (m *Metrics) SubmissionRejected(queue, limit string) {
	if m == nil {
		return
	}
	m.rejected.WithLabelValues(queue, limit).Inc()
}

// Finished records a finished execution.
func (m *Metrics) Finished(componentType, resultKind string) {
	if m == nil {
		return
	}
	m.finished.WithLabelValues(componentType, resultKind).Inc()
}

// TimerLag records how late a timer fired.
func (m *Metrics) TimerLag(timer string, lag time.Duration) {
	if m == nil {
		return
	}
	m.timerLag.WithLabelValues(timer).Observe(max(lag, 0).Seconds())
}

// LockRenewal records one lock renewal of a kept-alive activity attempt.
func (m *Metrics) LockRenewal(outcome string) {
	if m == nil {
		return
	}
	m.lockRenewals.WithLabelValues(outcome).Inc()
}

// SupervisedServices makes the restart counters of services exist at 0, so that a
// scrape shows them (and a rate over them works) before the first restart.
func (m *Metrics) SupervisedServices(services ...string) {
	if m == nil {
		return
	}
	for _, s := range services {
		m.restarts.WithLabelValues(s)
	}
}

// SupervisorRestart records that a supervised service is restarted after a failure.
func (m *Metrics) SupervisorRestart(service string) {
	if m == nil {
		return
	}
	m.restarts.WithLabelValues(service).Inc()
}

// Triggers makes the restart counters of triggers exist at 0 for every outcome.
func (m *Metrics) Triggers(names ...string) {
	if m == nil {
		return
	}
	for _, n := range names {
		for _, o := range []string{"returned", "err", "trapped", "failed"} {
			m.triggerRuns.WithLabelValues(n, o)
		}
	}
}

// TriggerRestart records that a trigger's run ended (outcome: returned, err, trapped,
// failed) and that the trigger is restarted after its backoff.
func (m *Metrics) TriggerRestart(trigger, outcome string) {
	if m == nil {
		return
	}
	m.triggerRuns.WithLabelValues(trigger, outcome).Inc()
}

// Schedules makes the firing counters of schedules exist at 0.
func (m *Metrics) Schedules(names ...string) {
	if m == nil {
		return
	}
	for _, n := range names {
		m.scheduleFires.WithLabelValues(n, "submitted")
		m.scheduleFires.WithLabelValues(n, "failed")
	}
}

// ScheduleFired records a firing of a schedule (outcome: submitted, failed).
func (m *Metrics) ScheduleFired(schedule, outcome string) {
	if m == nil {
		return
	}
	m.scheduleFires.WithLabelValues(schedule, outcome).Inc()
}

// Deleted records execution trees deleted (by retention or on request).
func (m *Metrics) Deleted(trees, executions, events int) {
	if m == nil {
		return
	}
	m.deleted.WithLabelValues("trees").Add(float64(trees))
	m.deleted.WithLabelValues("executions").Add(float64(executions))
	m.deleted.WithLabelValues("events").Add(float64(events))
}

// Gauge registers a gauge computed when it is scraped.
func (m *Metrics) Gauge(name, help string, value func() float64) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, value))
}

// GaugeVec registers a family of gauges with one label, computed when scraped: collect
// returns the value of every label value.
func (m *Metrics) GaugeVec(name, help, label string, collect func() map[string]float64) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(&gaugeVec{desc: prometheus.NewDesc(name, help, []string{label}, nil), collect: collect})
}

type gaugeVec struct {
	desc    *prometheus.Desc
	collect func() map[string]float64
}

func (g *gaugeVec) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *gaugeVec) Collect(ch chan<- prometheus.Metric) {
	for label, v := range g.collect() {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v, label)
	}
}
