// Command tree is a workflow that spawns a tree of child workflows of itself,
// fanout children per node, depth levels deep, whose leaves call the
// testing:sleep activity.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o tree.wasm ./test/components/tree
package main

import "github.com/obelisk-go/obelisk/sdk/go/obelisk"

const spawnFFQN = "testing:tree/tree.spawn"

func init() {
	obelisk.Export(spawnFFQN, spawn)
}

// spawn implements `spawn: func(depth: u8, fanout: u8, leaf-millis: u64) ->
// result<u64>`. A leaf (depth 0) sleeps in the sleep activity and counts 1;
// a node submits fanout children of itself, one level shallower, into a join
// set (a workflow may submit its own component's exports), and returns the
// sum of their counts: fanout^depth.
func spawn(ctx obelisk.Context, depth, fanout uint8, leafMillis uint64) (uint64, error) {
	if depth == 0 {
		if err := obelisk.CallVoid(ctx, "testing:sleep/sleep.sleep", leafMillis); err != nil {
			return 0, err
		}
		return 1, nil
	}
	js, err := obelisk.NewJoinSet(ctx)
	if err != nil {
		return 0, err
	}
	for range fanout {
		if _, err := obelisk.Submit(ctx, js, spawnFFQN, depth-1, fanout, leafMillis); err != nil {
			return 0, err
		}
	}
	var leaves uint64
	for range fanout {
		_, n, err := obelisk.AwaitNext[uint64](ctx, js, spawnFFQN)
		if err != nil {
			return 0, err
		}
		leaves += n
	}
	return leaves, nil
}

func main() {}
