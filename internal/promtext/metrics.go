// Package promtext is the daemon's Prometheus exposition: counters, labelled counters over a fixed set
// of values, gauges read when scraped and histograms with fixed buckets, served in the text format
// (version 0.0.4) with the Go runtime's and the process's own series. It stands in for
// client_golang, whose protobuf data model cost every host about 2.8 MB of binary and of resident
// memory for a few dozen series.
package promtext

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds the series /metrics serves, in the order they were added.
type Registry struct {
	mu   sync.Mutex
	fams []family
}

// family is one metric name with its HELP and TYPE lines.
type family interface {
	name() string
	write(w *bufio.Writer)
}

func NewRegistry() *Registry { return &Registry{} }

func (r *Registry) add(f family) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.ContainsFunc(r.fams, func(g family) bool { return g.name() == f.name() }) {
		panic("metrics: " + f.name() + " registered twice")
	}
	r.fams = append(r.fams, f)
}

// Counter adds a counter.
func (r *Registry) Counter(name, help string) *Counter {
	c := &Counter{meta: meta{name, help, "counter"}}
	r.add(c)
	return c
}

// CounterVec adds a counter with one label, which takes only the given values: each is exported from
// the start, at 0, and an increment for another value is dropped, so the label stays bounded.
func (r *Registry) CounterVec(name, help, label string, values []string) *CounterVec {
	v := &CounterVec{meta: meta{name, help, "counter"}, label: label, values: slices.Clone(values),
		counts: make([]atomic.Uint64, len(values))}
	r.add(v)
	return v
}

// GaugeFunc adds a gauge whose value f gives when scraped.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	r.add(&gaugeFunc{meta: meta{name, help, "gauge"}, f: f})
}

// Histogram adds a histogram with the given upper bounds, in increasing order.
func (r *Registry) Histogram(name, help string, bounds []float64) *Histogram {
	h := &Histogram{meta: meta{name, help, "histogram"}, bounds: slices.Clone(bounds), counts: make([]atomic.Uint64, len(bounds)+1)}
	r.add(h)
	return h
}

// ExponentialBuckets is n upper bounds from start, each factor times the one before.
func ExponentialBuckets(start, factor float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = start
		start *= factor
	}
	return out
}

// WriteTo writes every series in the text format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	fams := slices.Clone(r.fams)
	r.mu.Unlock()
	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	for _, f := range fams {
		f.write(bw)
	}
	err := bw.Flush()
	return cw.n, err
}

// ServeHTTP serves the series as Prometheus text.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = r.WriteTo(w)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type meta struct{ id, help, typ string }

func (m meta) name() string { return m.id }

// header writes the family's HELP and TYPE lines.
func (m meta) header(w *bufio.Writer) {
	w.WriteString("# HELP " + m.id + " " + helpEscaper.Replace(m.help) + "\n# TYPE " + m.id + " " + m.typ + "\n")
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// sample writes one line: name, the label pair if any, the value.
func sample(w *bufio.Writer, name, label, value string, v float64) {
	w.WriteString(name)
	if label != "" {
		w.WriteString("{" + label + `="` + labelEscaper.Replace(value) + `"}`)
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Counter counts up from 0.
type Counter struct {
	meta
	v atomic.Uint64
}

func (c *Counter) Inc()           { c.v.Add(1) }
func (c *Counter) Value() float64 { return float64(c.v.Load()) }

func (c *Counter) write(w *bufio.Writer) {
	c.header(w)
	sample(w, c.id, "", "", c.Value())
}

// CounterVec is a counter per value of one label, from a fixed set.
type CounterVec struct {
	meta
	label  string
	values []string
	counts []atomic.Uint64
}

// Inc counts one for value; a value outside the set is not counted.
func (v *CounterVec) Inc(value string) {
	if i := slices.Index(v.values, value); i >= 0 {
		v.counts[i].Add(1)
	}
}

// Value is the count for value (0 for one outside the set).
func (v *CounterVec) Value(value string) float64 {
	if i := slices.Index(v.values, value); i >= 0 {
		return float64(v.counts[i].Load())
	}
	return 0
}

func (v *CounterVec) write(w *bufio.Writer) {
	v.header(w)
	for i, value := range v.values {
		sample(w, v.id, v.label, value, float64(v.counts[i].Load()))
	}
}

type gaugeFunc struct {
	meta
	f func() float64
}

func (g *gaugeFunc) write(w *bufio.Writer) {
	g.header(w)
	sample(w, g.id, "", "", g.f())
}

// Histogram counts observations into buckets by upper bound, with their sum.
type Histogram struct {
	meta
	bounds []float64
	counts []atomic.Uint64 // per bucket, not cumulative; the last is above every bound
	sum    atomic.Uint64   // float64 bits
}

func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v) // the first bound >= v: buckets are "less or equal"
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

func (h *Histogram) write(w *bufio.Writer) {
	h.header(w)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		sample(w, h.id+"_bucket", "le", formatFloat(b), float64(cum))
	}
	cum += h.counts[len(h.bounds)].Load()
	sample(w, h.id+"_bucket", "le", "+Inf", float64(cum))
	sample(w, h.id+"_sum", "", "", math.Float64frombits(h.sum.Load()))
	sample(w, h.id+"_count", "", "", float64(cum))
}
