package promtext

import (
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// What /metrics serves is Prometheus text as Prometheus's own parser reads it, with the values given.
func TestExpositionParsesAsPrometheusText(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("t_total", "A counter.\nSecond line with a \\ backslash.")
	v := r.CounterVec("t_errors_total", "By reason.", "reason", []string{"a", "b"})
	h := r.Histogram("t_seconds", "A histogram.", ExponentialBuckets(0.001, 2, 3)) // 0.001, 0.002, 0.004
	r.GaugeFunc("t_ready", "A gauge.", func() float64 { return 1 })
	r.Runtime()
	c.Inc()
	c.Inc()
	v.Inc("b")
	v.Inc("not-in-the-set") // dropped: the label stays bounded
	for _, x := range []float64{0.0005, 0.001, 0.003, 10} {
		h.Observe(x)
	}

	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("not Prometheus text: %v\n%s", err, rec.Body.String())
	}
	if got := fams["t_total"].GetMetric()[0].GetCounter().GetValue(); got != 2 {
		t.Errorf("t_total = %v", got)
	}
	if got := fams["t_total"].GetHelp(); got != "A counter.\nSecond line with a \\ backslash." {
		t.Errorf("help read back as %q", got)
	}
	vals := map[string]float64{}
	for _, m := range fams["t_errors_total"].GetMetric() {
		vals[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	if len(vals) != 2 || vals["a"] != 0 || vals["b"] != 1 {
		t.Errorf("t_errors_total = %v; want a=0, b=1 and nothing else", vals)
	}
	hist := fams["t_seconds"].GetMetric()[0].GetHistogram()
	var cum []uint64
	for _, b := range hist.GetBucket() {
		cum = append(cum, b.GetCumulativeCount())
	}
	// 0.0005 and 0.001 are <= 0.001; 0.003 <= 0.004; 10 only in +Inf (the parser folds +Inf into the count).
	if want := []uint64{2, 2, 3}; len(cum) < 3 || cum[0] != want[0] || cum[1] != want[1] || cum[2] != want[2] {
		t.Errorf("cumulative buckets %v, want %v", cum, want)
	}
	if hist.GetSampleCount() != 4 || hist.GetSampleSum() != 0.0005+0.001+0.003+10 {
		t.Errorf("count %d, sum %v", hist.GetSampleCount(), hist.GetSampleSum())
	}
	if fams["t_ready"].GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Error("t_ready is not 1")
	}
	for _, name := range []string{"go_goroutines", "go_info", "go_memstats_heap_inuse_bytes", "process_cpu_seconds_total",
		"process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if _, err := os.Stat("/proc/self/statm"); err == nil {
		rss := fams["process_resident_memory_bytes"].GetMetric()[0].GetGauge().GetValue()
		if rss < 1<<20 {
			t.Errorf("process_resident_memory_bytes %v: less than a MiB", rss)
		}
	}
}

func TestRegisteringANameTwicePanics(t *testing.T) {
	r := NewRegistry()
	r.Counter("t_total", "")
	defer func() {
		if recover() == nil {
			t.Error("a second t_total was accepted")
		}
	}()
	r.GaugeFunc("t_total", "", func() float64 { return 0 })
}
