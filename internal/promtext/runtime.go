package promtext

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// started stands for the process's start: this package is initialised before main runs.
var started = time.Now()

// Runtime adds the Go runtime's and the process's series, under the names client_golang's Go and
// process collectors use, so that dashboards built on those keep working: go_goroutines, go_info,
// go_memstats_* (from one runtime.ReadMemStats per scrape), process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds, process_max_fds and
// process_start_time_seconds.
func (r *Registry) Runtime() {
	r.add(runtimeSeries{})
}

type runtimeSeries struct{}

func (runtimeSeries) name() string { return "go_ and process_" }

func (runtimeSeries) write(w *bufio.Writer) {
	one := func(name, typ, help string, v float64) {
		m := meta{name, help, typ}
		m.header(w)
		sample(w, name, "", "", v)
	}
	one("go_goroutines", "gauge", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	(meta{"go_info", "Information about the Go environment.", "gauge"}).header(w)
	sample(w, "go_info", "version", runtime.Version(), 1)

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, s := range []struct {
		name, typ, help string
		v               uint64
	}{
		{"go_memstats_alloc_bytes", "gauge", "Number of bytes allocated in heap and currently in use.", ms.Alloc},
		{"go_memstats_heap_alloc_bytes", "gauge", "Number of heap bytes allocated and currently in use.", ms.HeapAlloc},
		{"go_memstats_heap_inuse_bytes", "gauge", "Number of heap bytes that are in use.", ms.HeapInuse},
		{"go_memstats_heap_idle_bytes", "gauge", "Number of heap bytes waiting to be used.", ms.HeapIdle},
		{"go_memstats_heap_released_bytes", "gauge", "Number of heap bytes released to the OS.", ms.HeapReleased},
		{"go_memstats_heap_objects", "gauge", "Number of currently allocated objects.", ms.HeapObjects},
		{"go_memstats_stack_inuse_bytes", "gauge", "Number of bytes obtained from the system for stack allocator.", ms.StackInuse},
		{"go_memstats_sys_bytes", "gauge", "Number of bytes obtained from the system.", ms.Sys},
		{"go_memstats_next_gc_bytes", "gauge", "Number of heap bytes when next garbage collection will take place.", ms.NextGC},
		{"go_memstats_mallocs_total", "counter", "Total number of heap objects allocated.", ms.Mallocs},
		{"go_memstats_frees_total", "counter", "Total number of heap objects frees.", ms.Frees},
		{"go_memstats_gc_cycles_total", "counter", "Number of completed GC cycles.", uint64(ms.NumGC)},
	} {
		one(s.name, s.typ, s.help, float64(s.v))
	}

	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		one("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu.Seconds())
	}
	if vsize, rss, ok := statm(); ok {
		one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss)
		one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize)
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		one("process_open_fds", "gauge", "Number of open file descriptors.", float64(len(fds)))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		one("process_max_fds", "gauge", "Maximum number of open file descriptors.", float64(lim.Cur))
	}
	one("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", float64(started.UnixNano())/1e9)
}

// statm reads the process's virtual and resident size, in bytes, from /proc/self/statm (Linux).
func statm() (vsize, rss float64, ok bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, 0, false
	}
	pages, err1 := strconv.ParseUint(f[0], 10, 64)
	res, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	size := float64(os.Getpagesize())
	return float64(pages) * size, float64(res) * size, true
}
