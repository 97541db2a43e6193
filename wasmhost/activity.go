package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/obelisk-go/obelisk/wasmhost/internal/linmem"
	"github.com/obelisk-go/obelisk/wasmhost/internal/wasmbin"
)

// Activity images.
//
// An activity must run _initialize in every instance, with the real clock and
// randomness (a snapshot would freeze the Go runtime's random seeds), but
// what instantiating does before it, copying the data segments (~1.8 MB for
// a Go guest) into fresh memory, is the same for every instance. So activity
// instances are made from the module's snapshot variant (wasmbin.
// SnapshotVariant: no data section, same code) with a memory mapped
// copy-on-write from an image holding the initial memory (the data segments
// applied, nothing else: linmem.Image), and then _initialize runs as it
// would in an instance of the original module, in the same environment.
//
// The image is made in the background on the first activity Instantiate of
// a module; until then, and whenever it cannot be made (no images on this
// platform, a memory under minImageSize, a start section, no snapshot
// variant) or instantiating from it fails, activity instances are made the
// plain way (initInstance): the image is an optimisation, never a reason for
// Instantiate to fail.

// activityImage is what activity instances of a module are made from.
type activityImage struct {
	alloc experimental.MemoryAllocator
	pages uint32
	took  time.Duration
}

// activityImageFor returns the module's activity image, or nil when there is
// none (yet): the first call starts making it in the background.
func (m *Module) activityImageFor() *activityImage {
	return m.act.get(m.ctx, m.rt.alloc != nil, m.prepareActivityImage)
}

// waitActivityImage starts making the activity image if needed and waits
// until it is made or has failed; nil means activities use the original
// module.
func (m *Module) waitActivityImage(ctx context.Context) (*activityImage, error) {
	return m.act.wait(ctx, m.activityImageFor)
}

func (m *Module) prepareActivityImage() {
	a, err := m.makeActivityImage(m.ctx)
	if err != nil {
		m.act.finish(nil, nil, nil)
		if m.ctx.Err() == nil {
			m.rt.logger.Debug("wasmhost: no memory image for activity instances; they copy the data segments",
				"module", m.name, "reason", err)
		}
		return
	}
	closed := func() bool { return m.ctx.Err() != nil }
	discard := func(*activityImage) {} // its image closes when collected
	if m.act.finish(a, closed, discard) {
		m.rt.logger.Debug("wasmhost: activity instances now start from a memory image", "module", m.name,
			"pages", a.pages, "took", a.took)
	}
}

// makeActivityImage rewrites the module into its variant, makes the image of
// its initial memory and compiles the variant (the same as the workflow
// snapshot's: wazero shares the code).
func (m *Module) makeActivityImage(ctx context.Context) (*activityImage, error) {
	start := time.Now()
	if m.rt.alloc == nil || m.rt.noImages || m.rt.noActivityImages {
		return nil, linmem.ErrNoImages
	}
	v, err := m.loadedVariant(ctx)
	if err != nil {
		return nil, err
	}
	if v.Start != "" {
		// The start function would run before _initialize with the
		// original's error reporting: not worth reproducing.
		return nil, errors.New("the module has a start function")
	}
	size := uint64(v.MemoryMin) * wasmPage
	if size < minImageSize {
		return nil, fmt.Errorf("initial memory of %d bytes: copying is cheaper", size)
	}
	chunks := make([]linmem.Chunk, len(v.Data))
	for i, d := range v.Data {
		chunks[i] = linmem.Chunk{Offset: uint64(d.Offset), Data: d.Data}
	}
	// Segments out of bounds fail here; the plain path then fails with its
	// own error.
	img, err := linmem.NewImage(size, chunks)
	if err != nil {
		return nil, err
	}
	// The image is never closed explicitly (see makeSnapshot).
	return &activityImage{alloc: img.Allocator(), pages: v.MemoryMin, took: time.Since(start)}, nil
}

// initFromImage makes an activity instance from the image: instantiating
// the variant (memory mapped from the image) replaces instantiating the
// original; _initialize then runs exactly as wazero runs it as the
// original's start function. fallback reports a failure before any guest
// code ran, which instantiating the original might not have.
func (m *Module) initFromImage(ctx context.Context, a *activityImage) (inst *Instance, fallback bool, err error) {
	inst = m.newShell(KindActivity)
	ictx, _, done, err := m.rt.enter(ctx)
	if err != nil {
		return nil, false, err
	}
	defer done()
	ictx = withInstance(m.withAllocator(ictx, a.alloc, inst, nil), inst)
	if fallback, err := m.initVariant(ctx, ictx, inst, false); err != nil {
		return nil, fallback, err
	}
	inst.fromImage = true
	return inst, false, nil
}

// initVariant instantiates compiled, a snapshot variant of the module, for inst and
// initialises it as instantiating the module itself would: with plain, it writes the
// variant's data segments and calls its start function (if any); without, the memory
// comes from an image that holds them (and the module has no start function). Then it
// calls _initialize. ictx is the call's context, carrying inst and the memory allocator.
// fallback reports a failure before any guest code ran.
func (m *Module) initVariant(ctx, ictx context.Context, inst *Instance, plain bool) (fallback bool, err error) {
	compiled, err := m.code(ictx)
	if err != nil {
		return false, err
	}
	var data []wasmbin.Segment
	var start string
	if plain {
		v, err := m.loadedVariant(ictx)
		if err != nil {
			return false, err
		}
		data, start = v.Data, v.Start
	}
	mod, err := m.rt.rt.InstantiateModule(ictx, compiled, inst.moduleConfig().WithStartFunctions())
	if err != nil {
		if ctx.Err() != nil || ictx.Err() != nil {
			return false, inst.classify(ctx, ictx, err)
		}
		return true, err
	}
	mem := mod.Memory()
	for i, d := range data {
		if mem == nil || !mem.Write(d.Offset, d.Data) {
			_ = closeWithMemory(context.Background(), mod, inst.env)
			// What instantiating the module would have refused.
			return false, fmt.Errorf("data segment %d [%#x, +%d) is outside the memory", i, d.Offset, len(d.Data))
		}
	}
	inst.initializing = true
	for _, name := range []string{start, exportInit} {
		if name == "" {
			continue
		}
		fn := mod.ExportedFunction(name)
		if fn == nil {
			inst.initializing = false
			_ = closeWithMemory(context.Background(), mod, inst.env)
			return true, fmt.Errorf("the variant does not export %s", name)
		}
		if _, err = fn.Call(ictx); err != nil {
			// As wazero's InstantiateModule does for a start function.
			_ = closeWithMemory(ictx, mod, inst.env)
			var exit *sys.ExitError
			if errors.As(err, &exit) {
				if exit.ExitCode() == 0 {
					err = nil
				}
			} else {
				err = fmt.Errorf("module[%s] function[%s] failed: %w", "", name, err)
			}
			if err != nil {
				inst.initializing = false
				return false, inst.classify(ctx, ictx, err)
			}
			break
		}
	}
	inst.initializing = false
	inst.mod = mod
	inst.alloc = mod.ExportedFunction(exportAlloc)
	inst.run = mod.ExportedFunction(exportRun)
	return false, nil
}
