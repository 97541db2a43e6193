// Package storagev1 is the storage schema: the protobuf messages the event store keeps on
// disk (an execution's Events and Responses, and the ExecutionState folded from them),
// generated from events.proto. It is versioned apart from the public API (package
// obeliskv1), so either can change without the other; see docs/RATIONALE.md.
package storagev1
