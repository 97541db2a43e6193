package wasmhost

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/tetratelabs/wazero/api"

	"github.com/obelisk-go/obelisk/wasmhost/internal/linmem"
	"github.com/obelisk-go/obelisk/wasmhost/internal/wasmbin"
)

// Snapshots of parked workflow instances.
//
// A workflow instance waiting for a response is parked in a host call: the guest is
// frozen inside obelisk_v1.host_call, on the goroutine that runs it. Its state is then
// its linear memory, its mutable globals and what the host keeps for it (the
// deterministic clock and random source, the tail of stderr), plus the wasm call stack
// between the export and the import. A Go guest does not need that stack (see
// wasmbin.GoResume): its goroutine stacks live in linear memory, and a fresh instance
// with the parked one's memory and globals finishes the call exactly as the parked one
// would, given the same answer. So CaptureParked records memory (the pages that differ
// from the module's workflow snapshot, which every workflow instance starts from),
// globals and host state, and ResumeParked makes an instance that, run, first answers
// the pending host call and then lets the guest carry on.
//
// Only modules with a snapshot variant that found the Go shapes (Variant.Resume) and a
// workflow snapshot can be captured: others get ErrNotResumable, and their workflows
// replay from the start as before.

// ErrNotResumable is returned by CaptureParked and ResumeParked for instances and
// modules that cannot be captured or resumed (not a Go guest of the expected shape,
// no workflow snapshot, not a workflow in a host call).
var ErrNotResumable = errors.New("wasmhost: instance cannot be snapshotted while parked")

// parkedMagic starts an encoded parked image; the digit is its format's version.
const parkedMagic = "OBKPARK1"

// pendingCall is the host_call in progress: where its answer goes.
type pendingCall struct {
	active         bool
	outPtr, outCap uint32
}

// parkedImage is a decoded parked snapshot.
type parkedImage struct {
	resume  wasmbin.GoResume
	base    [32]byte // the digest of the workflow snapshot's memory the chunks are a diff against
	pages   uint32
	globals []uint64 // in the order of the variant's Globals
	clock   int64
	rand    []byte
	stderr  []byte
	outPtr  uint32
	outCap  uint32
	chunks  []memoryChunk // pages that differ from the workflow snapshot's memory
}

// CaptureParked captures the state of the workflow instance whose host call is being
// answered with ctx (the ctx a [HostHandler] gets): call it from HostCall, before it
// returns. The guest is frozen meanwhile, so the image is consistent. The image is
// opaque, for [Module.ResumeParked] of the same module.
func CaptureParked(ctx context.Context) ([]byte, error) {
	inst := instanceFrom(ctx)
	if inst == nil || inst.kind != KindWorkflow || !inst.pending.active || inst.mod == nil {
		return nil, fmt.Errorf("%w: not a workflow instance in a host call", ErrNotResumable)
	}
	m := inst.module
	v := m.variant
	if v == nil || v.Resume == nil || len(v.Globals) == 0 || v.Globals[0].Index != 0 {
		return nil, fmt.Errorf("%w: module %q: %v", ErrNotResumable, m.name, resumeReason(v))
	}
	// The instance is about to be dropped anyway: waiting for a snapshot being made
	// (after the module was loaded again, say) costs less than replaying later.
	s, err := m.waitSnapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: capture: %w", err)
	}
	if s == nil {
		return nil, fmt.Errorf("%w: module %q has no workflow snapshot", ErrNotResumable, m.name)
	}
	mem := inst.mod.Memory()
	buf, ok := mem.Read(0, mem.Size())
	if !ok {
		return nil, errors.New("wasmhost: capture: memory not readable")
	}
	base, free := s.baseline()
	defer free()
	p := parkedImage{
		resume: *v.Resume, base: s.digest, pages: mem.Size() / wasmPage, clock: inst.clock.next,
		stderr: inst.stderr.tail(), outPtr: inst.pending.outPtr, outCap: inst.pending.outCap,
	}
	if p.rand, err = inst.rand.src.MarshalBinary(); err != nil {
		return nil, fmt.Errorf("wasmhost: capture: random source: %w", err)
	}
	for _, g := range v.Globals {
		eg := inst.mod.ExportedGlobal(g.Export)
		if eg == nil {
			return nil, fmt.Errorf("%w: global %s is not exported", ErrNotResumable, g.Export)
		}
		p.globals = append(p.globals, eg.Get())
	}
	p.chunks = changedPages(buf, base)
	return p.encode(), nil
}

func resumeReason(v *wasmbin.Variant) error {
	if v == nil {
		return errors.New("no snapshot variant")
	}
	if v.ResumeErr != nil {
		return v.ResumeErr
	}
	if v.Resume == nil {
		return errors.New("no resumable call")
	}
	return errors.New("global 0 (the stack pointer) is not mutable")
}

// baseline returns the snapshot's memory (mapped from its image, or assembled from its
// chunks) and a function that releases it.
func (s *snapshot) baseline() ([]byte, func()) {
	size := uint64(s.pages) * wasmPage
	if s.image != nil {
		lm := s.alloc.Allocate(size, size)
		return lm.Reallocate(size), lm.Free
	}
	buf := make([]byte, size)
	for _, c := range s.chunks {
		copy(buf[c.offset:], c.data)
	}
	return buf, func() {}
}

// truncated returns the snapshot's memory up to pages, as chunks.
func (s *snapshot) truncated(pages uint32) []memoryChunk {
	base, free := s.baseline()
	defer free()
	chunks, _ := nonZeroChunks(base[:uint64(pages)*wasmPage])
	return chunks
}

// changedPages returns the pages of mem that differ from base (beyond base: that are not
// all zeros), runs of them merged.
func changedPages(mem, base []byte) []memoryChunk {
	var chunks []memoryChunk
	for off := 0; off < len(mem); off += snapshotPage {
		end := min(off+snapshotPage, len(mem))
		page := mem[off:end]
		var same bool
		if end <= len(base) {
			same = bytes.Equal(page, base[off:end])
		} else {
			same = bytes.Equal(page, zeroPage[:end-off])
		}
		if same {
			continue
		}
		if n := len(chunks); n > 0 && int(chunks[n-1].offset)+len(chunks[n-1].data) == off {
			chunks[n-1].data = append(chunks[n-1].data, page...)
		} else {
			chunks = append(chunks, memoryChunk{offset: uint32(off), data: append([]byte(nil), page...)})
		}
	}
	return chunks
}

func (p *parkedImage) encode() []byte {
	size := len(parkedMagic) + 64 + 8*len(p.globals) + len(p.rand) + len(p.stderr)
	for _, c := range p.chunks {
		size += 8 + len(c.data)
	}
	b := make([]byte, 0, size)
	b = append(b, parkedMagic...)
	b = append(b, p.base[:]...)
	for _, v := range []uint32{p.resume.Loop, p.resume.StopPCF, p.resume.ExportResultOffset, p.resume.ImportResultOffset,
		p.pages, p.outPtr, p.outCap, uint32(len(p.globals))} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	for _, g := range p.globals {
		b = binary.LittleEndian.AppendUint64(b, g)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(p.clock))
	b = appendBytes(b, p.rand)
	b = appendBytes(b, p.stderr)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p.chunks)))
	for _, c := range p.chunks {
		b = binary.LittleEndian.AppendUint32(b, c.offset)
		b = appendBytes(b, c.data)
	}
	return b
}

func appendBytes(b, data []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// decodeParked decodes an image, checking that it is consistent in itself.
func decodeParked(b []byte) (*parkedImage, error) {
	d := decoder{b: b}
	if !bytes.HasPrefix(b, []byte(parkedMagic)) {
		return nil, errors.New("not a parked instance image (bad magic)")
	}
	d.pos = len(parkedMagic)
	p := &parkedImage{}
	if d.need(32) {
		copy(p.base[:], b[d.pos:])
		d.pos += 32
	}
	for _, f := range []*uint32{&p.resume.Loop, &p.resume.StopPCF, &p.resume.ExportResultOffset, &p.resume.ImportResultOffset,
		&p.pages, &p.outPtr, &p.outCap} {
		*f = d.u32()
	}
	n := d.u32()
	if uint64(n)*8 > uint64(len(b)) {
		return nil, fmt.Errorf("image claims %d globals", n)
	}
	for range n {
		p.globals = append(p.globals, d.u64())
	}
	p.clock = int64(d.u64())
	p.rand = d.bytes()
	p.stderr = d.bytes()
	size := uint64(p.pages) * wasmPage
	chunks := d.u32()
	for i := uint32(0); i < chunks && d.err == nil; i++ {
		c := memoryChunk{offset: d.u32(), data: d.bytes()}
		if uint64(c.offset)+uint64(len(c.data)) > size {
			return nil, fmt.Errorf("chunk %d [%#x, +%d) is outside the image's %d pages", i, c.offset, len(c.data), p.pages)
		}
		p.chunks = append(p.chunks, c)
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.pos != len(b) {
		return nil, fmt.Errorf("%d bytes after the image", len(b)-d.pos)
	}
	return p, nil
}

// decoder reads an image; the first error sticks.
type decoder struct {
	b   []byte
	pos int
	err error
}

func (d *decoder) need(n uint64) bool {
	if d.err == nil && uint64(d.pos)+n > uint64(len(d.b)) {
		d.err = fmt.Errorf("image truncated at byte %d", d.pos)
	}
	return d.err == nil
}

func (d *decoder) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b[d.pos:])
	d.pos += 4
	return v
}

func (d *decoder) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.pos:])
	d.pos += 8
	return v
}

func (d *decoder) bytes() []byte {
	n := d.u32()
	if !d.need(uint64(n)) {
		return nil
	}
	v := d.b[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return v
}

// Answer answers the host call a resumed instance is parked in: what the [HostHandler]
// would have returned for it.
type Answer func(ctx context.Context) ([]byte, error)

// ResumeParked makes a workflow instance in the state [CaptureParked] captured, with the
// execution's settings cfg (Kind must be KindWorkflow; its clock and seed are the
// image's). Run on it first answers the pending host call with answer, then carries on
// with the guest where it was; in.FFQN only names the run in errors. An image that does
// not decode or does not fit the module is an error (wrapping ErrNotResumable when the
// module cannot resume at all); nothing is run then.
func (m *Module) ResumeParked(ctx context.Context, cfg InstanceConfig, image []byte, answer Answer) (*Instance, error) {
	if cfg.Kind != KindWorkflow {
		return nil, fmt.Errorf("wasmhost: resume: kind %v: only workflows are resumed", cfg.Kind)
	}
	if err := checkInstanceConfig(cfg); err != nil {
		return nil, fmt.Errorf("wasmhost: resume: %w", err)
	}
	v := m.variant
	if v == nil || v.Resume == nil || len(v.Globals) == 0 || v.Globals[0].Index != 0 {
		return nil, fmt.Errorf("%w: module %q: %v", ErrNotResumable, m.name, resumeReason(v))
	}
	p, err := decodeParked(image)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: resume: %w", err)
	}
	if p.resume != *v.Resume || len(p.globals) != len(v.Globals) {
		return nil, fmt.Errorf("wasmhost: resume: the image is of another module than %q", m.name)
	}
	src := new(rand.ChaCha8)
	if err := src.UnmarshalBinary(p.rand); err != nil {
		return nil, fmt.Errorf("wasmhost: resume: random source: %w", err)
	}
	s, err := m.waitSnapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: resume: %w", err)
	}
	if s == nil {
		return nil, fmt.Errorf("%w: module %q has no workflow snapshot", ErrNotResumable, m.name)
	}
	if p.base != s.digest {
		return nil, fmt.Errorf("wasmhost: resume: the image is a diff against another workflow snapshot of module %q", m.name)
	}
	var inst *Instance
	if p.pages >= s.pages {
		inst, err = m.restore(ctx, s, KindWorkflow)
	} else {
		// Parked in an instance that was not made from the snapshot (made while the
		// snapshot was being made) and holds less memory: an instance restored from
		// the snapshot would hold more than it. Build its memory from a plain one.
		inst, err = m.restore(ctx, &snapshot{pages: p.pages, chunks: s.truncated(p.pages), globals: s.globals, clock: s.clock, rand: s.rand}, KindWorkflow)
	}
	if err != nil {
		return nil, fmt.Errorf("wasmhost: resume: %w", err)
	}
	if err := p.apply(inst.mod, v.Globals); err != nil {
		_ = inst.closeModule(context.Background())
		return nil, fmt.Errorf("wasmhost: resume: %w", err)
	}
	inst.configure(cfg)
	inst.clock.next, inst.rand.src = p.clock, src
	inst.stderr.reset(p.stderr)
	inst.resumeFn = inst.mod.ExportedFunction(v.ResumeExport)
	if inst.resumeFn == nil {
		_ = inst.closeModule(context.Background())
		return nil, fmt.Errorf("wasmhost: resume: the variant does not export %s", v.ResumeExport)
	}
	inst.resumed = &resumeState{image: p, answer: answer}
	return inst, nil
}

// resumeState is what Run needs to carry on a resumed instance.
type resumeState struct {
	image  *parkedImage
	answer Answer
}

// apply grows the memory of an instance restored from the workflow snapshot to the
// image's size and writes the image's pages and globals into it.
func (p *parkedImage) apply(mod api.Module, globals []wasmbin.Global) error {
	mem := mod.Memory()
	if cur := mem.Size() / wasmPage; cur < p.pages {
		if _, ok := mem.Grow(p.pages - cur); !ok {
			return fmt.Errorf("growing memory from %d to %d pages failed (memory limit?)", cur, p.pages)
		}
	}
	for _, c := range p.chunks {
		view, ok := mem.Read(c.offset, uint32(len(c.data)))
		if !ok {
			return fmt.Errorf("memory chunk [%#x, +%d) outside memory", c.offset, len(c.data))
		}
		// Every page of the chunk is written: fault them in at once (a resumed
		// instance writes hundreds of pages, each a fault otherwise).
		linmem.Populate(view)
		copy(view, c.data)
	}
	values := make([]globalValue, len(globals))
	for i, g := range globals {
		values[i] = globalValue{export: g.Export, value: p.globals[i]}
	}
	if !setGlobals(mod, values) {
		return errors.New("a global of the image is not exported as mutable")
	}
	return nil
}

// callResumed answers the pending host call of a resumed instance and runs the guest on
// to the end of the export; it returns the export's result, as obelisk_v1_run would.
// runCtx carries the instance (withInstance).
func (i *Instance) callResumed(runCtx context.Context) (uint64, error) {
	st := i.resumed
	p := st.image
	mem := i.mod.Memory()
	i.pending = pendingCall{active: true, outPtr: p.outPtr, outCap: p.outCap} // it may be captured again
	resp, herr := st.answer(runCtx)
	i.pending = pendingCall{}
	n, err := i.respond(runCtx, mem, resp, herr, p.outPtr, p.outCap)
	if err != nil {
		return 0, err
	}
	sp := i.mod.ExportedGlobal(i.module.variant.Globals[0].Export).(api.MutableGlobal)
	at := uint32(sp.Get())
	// What the import's wrapper does with the answer: store it, pop its return address.
	if !mem.WriteUint32Le(at+p.resume.ImportResultOffset, uint32(n)) {
		return 0, &guestFault{msg: fmt.Sprintf("resume: the stack pointer %#x is outside memory", at)}
	}
	sp.Set(uint64(at + 8))
	if _, err := i.resumeFn.Call(runCtx, uint64(p.resume.StopPCF)); err != nil {
		return 0, err
	}
	res, ok := mem.ReadUint64Le(uint32(sp.Get()) + p.resume.ExportResultOffset)
	if !ok {
		return 0, &guestFault{msg: "resume: the export's result is outside memory"}
	}
	return res, nil
}
