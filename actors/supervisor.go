package actors

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// The engine's long-running work — expiring locks, answering delays, finishing
// cancellations — runs as services: protoactor actors, children of one supervisor, each
// doing passes over the store's indexes. A pass reads what is due from the store and
// commits what it decides through the execution actors (or as one store transaction),
// so a service keeps nothing the store does not have: when one panics, its supervisor
// restarts it after a backoff and the new incarnation's first pass re-reads the indexes,
// finding done what the crashed pass committed and still due what it did not. Nothing is
// lost and, since every commit checks the execution's version, nothing is done twice.
//
// A service that keeps failing is a bug that restarts cannot fix; running on without
// timers or cancellations would leave executions locked or waiting for ever while the
// API accepts new ones. So past its policy's failures the supervisor gives up and the
// engine fail-stops, like on a store failure: Failed is closed and the server exits
// non-zero. A restart recovers every acknowledged execution.

// supervised lists the services and how each is supervised: a new service (retention)
// is one more line here.
func (e *Engine) supervised() []*service {
	services := []*service{
		{name: "timers", wake: &e.timers.wake, pass: e.timers.pass, policy: defaultRestarts()},
		{name: "delays", wake: &e.delays.wake, pass: e.delays.pass, policy: defaultRestarts()},
		{name: "deadlines", wake: &e.deadlines.wake, pass: e.deadlines.pass, policy: defaultRestarts()},
		{name: "canceller", wake: &e.cancels.wake, pass: e.cancels.pass, policy: defaultRestarts()},
		{name: "keepalives", wake: &e.keepalives.wake, pass: e.keepalives.pass, policy: defaultRestarts()},
		{name: "schedules", wake: &e.schedules.wake, pass: e.schedules.pass, policy: defaultRestarts()},
	}
	if e.retention.runs() {
		services = append(services, &service{name: "retention", wake: &e.retention.wake, pass: e.retention.pass, policy: defaultRestarts()})
	}
	for _, q := range e.queues {
		services = append(services, &service{name: q.name, wake: &q.wake, pass: q.pass, stopped: q.drain, policy: defaultRestarts()})
	}
	// A trigger's pass runs its guest until it ends (trigger.go): its own ends are no
	// failures of the service, only a panic of the host is.
	for _, t := range e.triggers {
		services = append(services, &service{name: "trigger:" + t.c.Config.Name, wake: &t.wake, pass: t.pass, policy: defaultRestarts()})
	}
	return services
}

// restartPolicy is a supervisor strategy: restart after a backoff that grows with the
// failures in Window, and give up (fail-stop the engine) at the MaxFailures-th failure
// within Window.
type restartPolicy struct {
	// Backoff is the delay before the first restart; the n-th failure within Window
	// waits n times as long (protoactor's exponential backoff strategy).
	Backoff     time.Duration
	MaxFailures int
	Window      time.Duration
}

// defaultRestarts tolerates a transient fault (a bug hit by one rare execution) while
// a fault that repeats stops the engine within seconds rather than minutes: 4 restarts
// wait 0.1 + 0.2 + 0.3 + 0.4 s, the 5th failure within a minute stops the engine.
func defaultRestarts() restartPolicy {
	return restartPolicy{Backoff: 100 * time.Millisecond, MaxFailures: 5, Window: time.Minute}
}

// A service is one supervised actor: pass does one round of its work and returns when
// the next is due (zero: nothing known, the safety tick bounds the wait); it runs when
// the service starts, when it is woken and when the next round is due. stopped, if set,
// runs when the service stops for good (not when it restarts), after runCtx ended.
type service struct {
	name    string
	wake    *wakeup
	pass    func(ctx context.Context) time.Time
	stopped func()
	policy  restartPolicy
}

// wakeup asks a service for a pass. It never blocks, so that the store's commit hook may
// call it, and wakes coalesce: one pass is queued at most.
type wakeup struct {
	system  *actor.ActorSystem
	pid     atomic.Pointer[actor.PID] // set by the actor itself when it starts
	pending atomic.Bool
}

type passMsg struct{}

func (w *wakeup) poke() {
	pid := w.pid.Load()
	if pid == nil {
		return // not started yet: it passes as it starts
	}
	if w.pending.CompareAndSwap(false, true) {
		w.system.Root.Send(pid, &passMsg{})
	}
}

// serviceActor runs the passes of one service. A restart makes a new serviceActor; the
// service's own state (what it was asked to do) lives outside and survives.
type serviceActor struct {
	e     *Engine
	s     *service
	timer *time.Timer
}

func (a *serviceActor) Receive(c actor.Context) {
	switch c.Message().(type) {
	case *actor.Started:
		a.s.wake.pid.Store(c.Self())
		a.s.wake.poke()
	case *passMsg:
		a.s.wake.pending.Store(false) // a wake from now on asks for another pass
		if a.e.runCtx.Err() != nil {
			return
		}
		next := a.run()
		wait := safetyTick
		if !next.IsZero() {
			wait = min(wait, time.Until(next))
		}
		a.stopTimer()
		a.timer = time.AfterFunc(max(wait, time.Millisecond), a.s.wake.poke)
	case *actor.Restarting:
		a.stopTimer()
	case *actor.Stopping:
		a.stopTimer()
		if a.s.stopped != nil {
			a.s.stopped()
		}
	}
}

// run runs a pass; a panic carries its stack to the supervisor, which logs it.
func (a *serviceActor) run() time.Time {
	defer func() {
		if r := recover(); r != nil {
			panic(&servicePanic{value: r, stack: debug.Stack()})
		}
	}()
	a.e.hook(a.s.name, "pass")
	return a.s.pass(a.e.runCtx)
}

func (a *serviceActor) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
	}
}

type servicePanic struct {
	value any
	stack []byte
}

func (p *servicePanic) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// ServiceFailedError is the engine's error (Engine.Err) when a supervised service failed
// more often than its restart policy allows.
type ServiceFailedError struct {
	Service  string
	Failures int
	Window   time.Duration
	Reason   string // the last failure
}

func (e *ServiceFailedError) Error() string {
	return fmt.Sprintf("supervised service %q failed %d times within %s (last: %s): the engine stopped rather than run without it",
		e.Service, e.Failures, e.Window, e.Reason)
}

// supervisor is the parent of the services and their supervisor strategy: protoactor
// hands it the failures of its children (an actor that is a SupervisorStrategy
// supervises its children itself).
type supervisor struct {
	e        *Engine
	services []*service
	byPID    map[string]*service
	stopped  chan struct{}
}

func (s *supervisor) Receive(c actor.Context) {
	switch c.Message().(type) {
	case *actor.Started:
		s.byPID = map[string]*service{}
		for _, svc := range s.services {
			props := actor.PropsFromProducer(func() actor.Actor { return &serviceActor{e: s.e, s: svc} })
			pid, err := c.SpawnNamed(props, svc.name)
			if err != nil {
				// Only a duplicate name fails, a bug in the table above.
				panic(fmt.Sprintf("spawn service %s: %v", svc.name, err))
			}
			s.byPID[pid.Id] = svc
		}
	case *actor.Stopped:
		close(s.stopped)
	}
}

// HandleFailure restarts the failed service after its backoff, or fail-stops the engine
// once the service failed policy.MaxFailures times within policy.Window.
func (s *supervisor) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	svc := s.byPID[child.Id]
	if svc == nil { // not a service: cannot happen, but never leave a child suspended
		sup.StopChildren(child)
		return
	}
	var stack []byte
	if p, ok := reason.(*servicePanic); ok {
		stack = p.stack
	}
	failures := rs.NumberOfFailures(svc.policy.Window) + 1
	if failures >= svc.policy.MaxFailures {
		s.e.log.Error("supervisor: service failed too often, stopping the engine", "service", svc.name,
			"failures", failures, "window", svc.policy.Window, "reason", fmt.Sprint(reason), "stack", string(stack))
		sup.StopChildren(child)
		s.e.fail(&ServiceFailedError{Service: svc.name, Failures: failures, Window: svc.policy.Window, Reason: fmt.Sprint(reason)})
		return
	}
	s.e.log.Error("supervisor: service failed, restarting it", "service", svc.name, "failures", failures,
		"backoff", time.Duration(failures)*svc.policy.Backoff, "reason", fmt.Sprint(reason), "stack", string(stack))
	s.e.cfg.Metrics.SupervisorRestart(svc.name)
	// The backoff strategy counts this failure in rs and restarts the child when it is due.
	actor.NewExponentialBackoffStrategy(svc.policy.Window, svc.policy.Backoff).HandleFailure(system, sup, child, rs, reason, message)
}

// startServices spawns the supervisor and, under it, every service.
func (e *Engine) startServices() {
	stopped := make(chan struct{})
	services := e.supervised()
	for _, s := range services {
		s.wake.system = e.system
		e.cfg.Metrics.SupervisedServices(s.name)
	}
	props := actor.PropsFromProducer(func() actor.Actor { return &supervisor{e: e, services: services, stopped: stopped} })
	pid, err := e.system.Root.SpawnNamed(props, "supervisor")
	if err != nil {
		panic(fmt.Sprintf("spawn supervisor: %v", err)) // a fresh actor system has no such name
	}
	e.supervisor, e.servicesStopped = pid, stopped
}

// stopServices stops the services, waiting for the passes under way (they end soon
// once runCtx is cancelled).
func (e *Engine) stopServices() {
	if e.supervisor == nil {
		return
	}
	e.system.Root.Stop(e.supervisor)
	<-e.servicesStopped
}

// hook calls the test hook (Config.testHook) at a step of a service's pass.
func (e *Engine) hook(service, step string) {
	if e.cfg.testHook != nil {
		e.cfg.testHook(service, step)
	}
}
