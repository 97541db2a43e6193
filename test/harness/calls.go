package harness

import "time"

// CallGaps returns the times a workflow's calls were recorded (each call creates a join
// set) and the gaps between consecutive ones: gaps[i] is call i's round trip.
func CallGaps(s *Server, id string) ([]time.Time, []time.Duration) {
	var calls []time.Time
	for _, e := range s.Events(id) {
		if e.Kind == "history.join_set_create" {
			t, _ := time.Parse(time.RFC3339Nano, e.CreatedAt)
			calls = append(calls, t)
		}
	}
	var gaps []time.Duration
	for i := 1; i < len(calls); i++ {
		gaps = append(gaps, calls[i].Sub(calls[i-1]))
	}
	return calls, gaps
}
