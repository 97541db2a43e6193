package crashsim

import (
	"os"
	"strings"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// neededComponents returns the components of cfgs that an execution of ffqn may run
// on: those exporting ffqn, and every component exporting a function that one of them
// imports, transitively (a workflow loads only when all it imports is deployed).
// Components without a file (stubs with inline WIT) are kept. When a file cannot be
// read or its WIT parsed, cfgs is returned as it is: the engine then reports what is
// wrong, as `server run` would. exported is false when no component with a file exports
// ffqn (and none without one may).
func neededComponents(cfgs []actors.ComponentConfig, ffqn string) (_ []actors.ComponentConfig, exported bool) {
	type comp struct {
		cfg              actors.ComponentConfig
		exports, imports []string
	}
	comps := make([]comp, 0, len(cfgs))
	exporters := map[string][]int{}
	for _, cfg := range cfgs {
		c := comp{cfg: cfg}
		if cfg.Path != "" {
			wasm, err := os.ReadFile(cfg.Path)
			if err != nil {
				return cfgs, true
			}
			files, err := wit.ExtractFromWasm(wasm)
			if err != nil {
				return cfgs, true
			}
			resolve, err := wit.Parse(files)
			if err != nil {
				return cfgs, true
			}
			for _, fn := range resolve.Exports() {
				c.exports = append(c.exports, fn.FFQN())
			}
			for _, fn := range resolve.Imports() {
				f := fn.FFQN()
				if target, _, ok := wit.SplitExtension(f); ok {
					f = target
				}
				c.imports = append(c.imports, f)
			}
		}
		for _, f := range c.exports {
			exporters[f] = append(exporters[f], len(comps))
		}
		comps = append(comps, c)
	}
	if len(exporters[ffqn]) == 0 {
		for _, c := range comps {
			if c.cfg.Path == "" {
				return cfgs, true // an inline stub's: the engine knows
			}
		}
		// The engine's built-in components (the KV store's obelisk:kv) are in no config.
		return cfgs, strings.HasPrefix(ffqn, "obelisk:")
	}
	need := make([]bool, len(comps))
	var add func(i int)
	add = func(i int) {
		if need[i] {
			return
		}
		need[i] = true
		for _, f := range comps[i].imports {
			for _, j := range exporters[f] {
				add(j)
			}
		}
	}
	for _, i := range exporters[ffqn] {
		add(i)
	}
	var out []actors.ComponentConfig
	for i, c := range comps {
		if need[i] || c.cfg.Path == "" {
			out = append(out, c.cfg)
		}
	}
	return out, true
}
