package config

import (
	"fmt"

	"github.com/obelisk-go/obelisk/actors"
)

// Output is the stdout and stderr keys of a component ([[activity_wasm]], [[workflow]],
// [[webhook_endpoint]]): "none" (the default) discards what the guest writes there, "log"
// makes every line a log line of the execution (context "stdout" or "stderr"), stored
// and bounded like the lines the guest logs.
type Output struct {
	Stdout string `mapstructure:"stdout"`
	Stderr string `mapstructure:"stderr"`
}

func (o Output) apply(c *actors.ComponentConfig) error {
	for _, k := range []struct {
		key, value string
		capture    *bool
	}{{"stdout", o.Stdout, &c.CaptureStdout}, {"stderr", o.Stderr, &c.CaptureStderr}} {
		switch k.value {
		case "", "none":
		case "log":
			*k.capture = true
		default:
			return fmt.Errorf("%s = %q: want \"none\" or \"log\"", k.key, k.value)
		}
	}
	return nil
}
