// Package e2e tests the real obelisk binary end to end: the example components on a
// server process driven through the API and the CLI, killed and restarted.
package e2e

import (
	"testing"

	"github.com/obelisk-go/obelisk/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
