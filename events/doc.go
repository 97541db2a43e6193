// Package events owns what an execution is on disk: its append-only event stream, its
// response log, and the read models folded from both.
//
// Every execution has a stream of [storagev1.Event]s, versions 0, 1, 2, ...; an append
// names the version it expects and a mismatch is a [ConflictError], never an overwrite.
// Responses (a child finished, a delay expired) go to a second per-execution log, keyed by
// the child or delay ID so that delivering one twice is a no-op. [Fold] and [FoldResponse]
// are the pure state machine over both; [ExecutionState] is their result and is kept,
// together with the scheduling indexes derived from it, in the same Pebble batch as the
// events, so that the read models can never disagree with the streams after a crash.
//
// A [Tx] may touch several executions at once (a child's Finished and the parent's
// Response; a parent's request and the child's Created): on one node Pebble makes that
// atomic. Commits are synced, and concurrent committers share one sync (group commit).
//
// Every stored event and response carries a link of a hash chain through its log
// (chain.go), which [View.CheckChains] checks: a changed byte anywhere is found.
package events
