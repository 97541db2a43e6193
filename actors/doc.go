// Package actors runs executions: it is the engine of one node.
//
// Every live execution is a protoactor-go actor (see execution.go), spawned on demand
// when something has to change it and passivated when it has been idle for a while. The
// actor's mailbox serialises everything that changes the execution — being locked by an
// executor, a run recording history or finishing, a lock expiring — and every change is a
// transaction on the event store (package events), which checks versions and folds the
// state; the actor itself keeps nothing that the store does not have, so a crashed actor
// is simply restarted and reads its state again.
//
// Around the actors:
//   - an executor per queue (executor.go) locks the queue's pending executions, up to the
//     queue's concurrency limit, and runs each with the executor of its component (one
//     or more components share a queue): activities in a fresh WASM instance per
//     attempt (activity.go), workflows by replaying their history and continuing it
//     (workflow.go). When it has a free slot, the commit that creates an execution locks
//     it already (eager dispatch), saving the executor's own commit;
//   - a timer service (timers.go) expires the locks of runs that died, a delay timer
//     answers workflows' delays when they expire, and a canceller (cancel.go) finishes
//     the cancellations of workflows;
//   - a keepalive service (keepalive.go) renews the locks of running attempts of
//     activities with keepalive on, so that their lock expiry bounds how long a dead
//     node goes unnoticed rather than how long they may run;
//   - resident workflow instances (resident.go) wait in memory for their children
//     ("await" strategy) up to a bound, after which the least recently used are evicted
//     and will be replayed.
//
// The executors, timers and the canceller are services (supervisor.go): actors, children
// of one supervisor that restarts a service that panicked after a backoff and, at its 5th
// failure in a minute, stops the engine (Engine.Failed) rather than run without it. Each
// pass re-reads the store's indexes, so a restart loses nothing and repeats nothing.
//
// The store's commit hook wakes all of them: no component polls faster than a safety tick.
package actors
