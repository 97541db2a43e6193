package obeliskslog_test

import (
	"fmt"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskslog"
)

// Log messages go to the server's log, attributed to the execution.
func ExampleLogger() {
	obelisk.Export("example:log/log.run", func(ctx obelisk.Context, n uint8) error {
		ctx.Log(obelisk.LevelInfo, "starting")
		obeliskslog.Logger(ctx).Debug("computing", "n", n, "attempt", ctx.Attempt())
		return nil
	})

	host := &obelisk.TestHost{
		Log: func(level obelisk.Level, message string) { fmt.Println(level, message) },
	}
	host.Run("example:log/log.run", 7)
	// Output:
	// info starting
	// debug computing n=7 attempt=1
}
