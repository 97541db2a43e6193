package harness

import (
	"errors"
	"testing"
)

type fakeMods struct {
	id, n  int
	closed bool
}

// TestSharedBounded: the shared value is replaced once it has grown past its bound,
// and each replaced one is closed once, when its last user gives it back, never while
// one still uses it.
func TestSharedBounded(t *testing.T) {
	opened := 0
	var all []*fakeMods
	s := &shared[*fakeMods]{
		open: func() (*fakeMods, error) {
			opened++
			m := &fakeMods{id: opened}
			all = append(all, m)
			return m, nil
		},
		close: func(m *fakeMods) {
			if m.closed {
				t.Errorf("value %d closed twice", m.id)
			}
			m.closed = true
		},
		size: func(m *fakeMods) int { return m.n },
		max:  3,
	}
	a, releaseA, err := s.acquire()
	if err != nil {
		t.Fatal(err)
	}
	b, releaseB, _ := s.acquire()
	if a != b {
		t.Fatal("two users of a value within its bound got different ones")
	}
	a.n = 4 // a verification compiled past the bound
	releaseA()
	c, releaseC, _ := s.acquire()
	if c == a || a.closed {
		t.Fatalf("past its bound: got value %d again (closed %v), want a new one, the old kept for its user", c.id, a.closed)
	}
	releaseB()
	releaseB() // a second release changes nothing
	if !a.closed {
		t.Fatal("the replaced value was not closed after its last user gave it back")
	}
	c.n = 10
	releaseC()
	if c.closed {
		t.Fatal("the current value closed although nothing replaced it")
	}
	d, releaseD, _ := s.acquire()
	if d == c || !c.closed {
		t.Fatalf("value %d past its bound, unused: want it closed and replaced (got %d)", c.id, d.id)
	}
	releaseD()
	s.closeAll()
	for _, m := range all {
		if !m.closed {
			t.Errorf("value %d left open", m.id)
		}
	}

	failing := &shared[*fakeMods]{open: func() (*fakeMods, error) { return nil, errors.New("no runtime") }}
	if _, _, err := failing.acquire(); err == nil {
		t.Fatal("a failed open was not reported")
	}
}
