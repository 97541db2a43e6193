// Package actors is the engine of one node: an actor system (protoactor-go) of execution
// actors and of services under one supervisor, the run path that executes what the
// services hand out, and the Engine that assembles them and serves the API.
//
// The files say which part each belongs to:
//
//   - The execution actors (actor_execution.go). Every live execution is an actor,
//     spawned on demand when something has to change it and passivated when it has been
//     idle for a while. Its mailbox serialises everything that changes the execution —
//     being locked by an executor, a run recording history or finishing, a lock
//     expiring — and every change is a transaction on the event store (package events),
//     which checks versions and folds the state; the actor keeps nothing that the store
//     does not have, so a crashed actor is simply restarted and reads its state again.
//   - The supervisor and its services (supervisor.go, service_*.go): actors, children of
//     one supervisor that restarts a service that panicked after a backoff and, at its
//     5th failure in a minute, stops the engine (Engine.Failed) rather than run without
//     it. Each pass re-reads the store's indexes, so a restart loses nothing and repeats
//     nothing. The services: an executor per queue (service_executor.go), which locks
//     the queue's pending executions up to its concurrency limit and runs each; the
//     timer service and the delay timer (service_timers.go), which expire the locks of
//     runs that died and answer workflows' delays; the canceller
//     (service_canceller.go), which finishes the cancellations of workflows; the
//     keepalive service (service_keepalives.go), which renews the locks of running
//     attempts of activities with keepalive on, so that their lock expiry bounds how
//     long a dead node goes unnoticed rather than how long they may run; and retention
//     (service_retention.go), which deletes the trees of executions finished long ago;
//     the scheduler (service_schedules.go), which fires periodic schedules, each firing
//     an execution with a derived ID (the cron arithmetic is in actors/cronspec).
//   - The run path (run.go): the one path every execution an executor runs takes —
//     reserve its guest memory (run_memory.go), prepare, lock, run — with one runner per
//     type of component: activities in a fresh WASM instance per attempt
//     (runner_activity.go), workflows by replaying their history and continuing it
//     (runner_workflow.go, with its join sets in workflow_joinsets.go and the instances
//     that wait in memory for their children in workflow_resident.go), and the built-in
//     KV component (runner_kv.go). Guest log lines travel with the run's progress
//     (run_logs.go). When it has a free slot, the commit that creates an execution
//     locks it already (eager dispatch), saving the executor's own commit. A webhook
//     endpoint is not run by an executor: an HTTP request runs it (webhook_request.go).
//     Nor are activity stubs and activities whose required labels the server lacks:
//     external workers lock, renew and complete them through the API (external.go).
//   - The Engine (engine.go): configuration, start and recovery, and the API's
//     operations (Submit, State, WaitFinished, Follow; Cancel, Pause, Unpause and Stub
//     beside the canceller, Delete beside retention), over the component registry
//     (components.go, whose route picks the component of every new execution), the
//     component versions that unfinished executions are pinned to (versions.go) and the
//     builders of the events every path writes (builders.go).
//
// What is not the actor system and needs no Engine lives in sub-packages it uses:
//
//   - internal/membudget: the guest memory budget (admissions, growths, who gives way,
//     reclaiming parked instances); the engine decides what a run reserves.
//   - internal/kv: what each function of the KV component answers and writes, given
//     the store; internal/kvconfig: the read-only buckets read from TOML files.
//   - internal/histories: the cache of workflow histories that makes a replay read only
//     what was appended since.
//
// The store's commit hook wakes the services and the waiting runs: no component polls
// faster than a safety tick.
package actors
