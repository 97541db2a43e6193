package harness

import "sync"

// shared hands one value (the verifications' wasm modules) to concurrent users, and
// replaces it once it has grown past max: a test process verifies the stores of
// dozens of servers, each deploying its own components, and a value kept for the whole
// process would hold every module any of them compiled. The value replaced is closed
// when its last user is done with it.
type shared[T any] struct {
	open  func() (T, error)
	close func(T)
	size  func(T) int
	max   int

	mu  sync.Mutex
	cur *lease[T]
}

type lease[T any] struct {
	v       T
	users   int
	retired bool
}

// acquire returns the current value and the function that gives it back.
func (s *shared[T]) acquire() (T, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && s.size(s.cur.v) > s.max {
		s.retire(s.cur)
		s.cur = nil
	}
	if s.cur == nil {
		v, err := s.open()
		if err != nil {
			var zero T
			return zero, nil, err
		}
		s.cur = &lease[T]{v: v}
	}
	l := s.cur
	l.users++
	var once sync.Once
	return l.v, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			l.users--
			if l.retired && l.users == 0 {
				s.close(l.v)
			}
		})
	}, nil
}

// retire marks l as replaced, closing it now if nobody uses it. s.mu is held.
func (s *shared[T]) retire(l *lease[T]) {
	l.retired = true
	if l.users == 0 {
		s.close(l.v)
	}
}

// closeAll closes the current value (at the end of the process, its users done).
func (s *shared[T]) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		s.retire(s.cur)
		s.cur = nil
	}
}
