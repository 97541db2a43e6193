// Command workflow is the test-only workflow that runs conformance scripts in
// the engine (package conformance).
package main

import (
	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/test/conformance"
)

func init() {
	obelisk.Export(conformance.ScriptFFQN, conformance.Run)
}

func main() {}
