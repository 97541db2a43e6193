package harness

import (
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics scrapes the server's /metrics once and returns a lookup of one value in that
// scrape: a counter's or a gauge's value, or a histogram's or a summary's sample count, of the first
// series of name whose labels include labels. ok is false when there is none (a counter
// with labels appears only once something was counted).
func (s *Server) Metrics() func(name string, labels map[string]string) (v float64, ok bool) {
	s.t.Helper()
	resp, err := s.HTTP.Get(s.URL + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		s.t.Fatalf("parse /metrics: %v", err)
	}
	return func(name string, labels map[string]string) (float64, bool) {
		f, ok := families[name]
		if !ok {
			return 0, false
		}
	next:
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.Counter.GetValue(), true
			case dto.MetricType_GAUGE:
				return m.Gauge.GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.Histogram.GetSampleCount()), true
			case dto.MetricType_SUMMARY:
				return float64(m.Summary.GetSampleCount()), true
			}
		}
		return 0, false
	}
}
