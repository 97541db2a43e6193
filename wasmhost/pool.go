package wasmhost

import (
	"context"
	"sync"
)

// pool keeps up to cap(ready) initialised instances of one module and kind,
// made in the background, so that Instantiate hands one out instead of
// running _initialize on the caller's time. It is sound because _initialize
// does not depend on the InstanceConfig (see Module.Instantiate): a pooled
// instance is indistinguishable from a fresh one once configured.
//
// It saves latency, not CPU: every instance is still made once. When demand
// outruns the refill, Instantiate makes instances itself.
type pool struct {
	m     *Module
	kind  Kind
	ready chan *Instance
	wake  chan struct{}
	ctx   context.Context // the module's: cancelled by Module.Close and Runtime.Close
}

func newPool(m *Module, kind Kind, size int) *pool {
	p := &pool{m: m, kind: kind, ready: make(chan *Instance, size), wake: make(chan struct{}, 1), ctx: m.ctx}
	go p.run()
	return p
}

// take returns a ready instance, or nil, and asks for a refill.
func (p *pool) take() *Instance {
	select {
	case inst := <-p.ready:
		p.signal()
		return inst
	default:
		p.signal()
		return nil
	}
}

func (p *pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run fills the pool whenever it is asked to, until the module closes; then
// it closes the instances left.
func (p *pool) run() {
	defer p.drain()
	for {
		for len(p.ready) < cap(p.ready) && p.ctx.Err() == nil {
			inst, err := p.m.newInstance(p.ctx, p.kind)
			if err != nil {
				if p.ctx.Err() == nil {
					p.m.rt.logger.Warn("wasmhost: preparing an instance failed; retrying on the next Instantiate",
						"module", p.m.name, "kind", p.kind, "err", err)
				}
				break
			}
			select {
			case p.ready <- inst:
			default: // cannot happen: only run adds
				inst.Close(context.Background())
			}
		}
		select {
		case <-p.wake:
		case <-p.ctx.Done():
			return
		}
	}
}

func (p *pool) drain() {
	for {
		select {
		case inst := <-p.ready:
			inst.Close(context.Background())
		default:
			return
		}
	}
}

// pools holds a module's pools, made on the first Instantiate of each kind.
type pools struct {
	mu   sync.Mutex
	kind map[Kind]*pool
}

func (m *Module) poolFor(kind Kind) *pool {
	if m.rt.poolSize <= 0 || m.ctx.Err() != nil {
		return nil
	}
	m.pools.mu.Lock()
	defer m.pools.mu.Unlock()
	p := m.pools.kind[kind]
	if p == nil {
		if m.pools.kind == nil {
			m.pools.kind = map[Kind]*pool{}
		}
		p = newPool(m, kind, m.rt.poolSize)
		m.pools.kind[kind] = p
	}
	return p
}
