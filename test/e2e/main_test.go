// Package e2e tests the real obelisk binary end to end: the example components on a
// server process driven through the API and the CLI, killed and restarted.
//
// Each test runs its own server, so most run in parallel (t.Parallel): a server spends
// much of a test waiting (for timers, for a killed process, for its client). Those that
// do not are the tests whose outcome depends on time that CPU contention stretches — a
// lock_expiry of 1 s, a webhook's request_timeout, a delay racing a child — and that run
// alone, before the parallel ones.
package e2e

import (
	"testing"

	"github.com/obelisk-go/obelisk/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
