package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The performance figures the documents quote come from one `make bench` run, committed under
// internal/bench/runs/ as two files: <date>-<commit>-e2e.txt (the end-to-end harness's output) and
// <date>-<commit>-go.txt (the Go micro-benchmarks, -count 6). BENCHMARKS.md names the run on a line of
// its own, exactly once:
//
//	Run: `internal/bench/runs/<date>-<commit>-e2e.txt`
//
// and the Go file is that name with -go.txt for -e2e.txt. A document that quotes a figure names the
// e2e file too, so a reader can find where each figure comes from.
//
// What reads as a figure, in BENCHMARKS.md, README.md and packaging/README.md, is written as the run
// prints it, and must appear in the e2e file verbatim (not as part of a longer number):
//
//   - durations without a space before the unit: 4.5ms, 1026µs; with a space, a decimal (0.125 ms) or
//     any µs. An integer with a space before ms (250 ms) is configuration, not a figure: not checked;
//   - memory: 17.1 MiB (configuration in MiB, such as a task's memory reservation, is written otherwise);
//   - CPU: 0.10% of a core, and any decimal percentage.
//
// A Go benchmark figure is written as `<n> ns/op`, `<n> B/op` or `<n> allocs/op` on a line that names
// the benchmark in a code span (`PlanUnchanged/containers=150`), and n must be the median of that
// benchmark's lines in the Go file.
//
// Not checked: seconds (19.5s; flag values are written so too: 30s) and MB (the targets' unit, and the
// image sizes, which are not bench figures). And the check is of provenance, not of place: a figure
// changed into another figure the run prints (17.1 MiB for 17.3 MiB) passes.
//
// To move the documents to a new run: commit its two files, change the Run: line, run this test, and
// replace each figure it names.

// figureDocs are the documents whose figures must come from the run, as repository paths.
var figureDocs = []string{"BENCHMARKS.md", "README.md", "packaging/README.md"}

// repoRoot is the repository, seen from this package's directory (where go test runs).
const repoRoot = "../.."

var (
	runLineRe = regexp.MustCompile("(?m)^Run: `(internal/bench/runs/[^`/]+)-e2e\\.txt`[ \t]*$")

	// figureRe finds what reads as an end-to-end figure; group 1 is the figure. The spaced forms
	// allow a line break, as markdown wraps.
	figureRe = regexp.MustCompile(`(?:^|[^\w.])(` +
		`\d+(?:\.\d+)?%\s+of\s+a\s+core` +
		`|\d+\.\d+\s?%` +
		`|\d+(?:\.\d+)?\s+MiB` +
		`|\d+(?:\.\d+)?(?:ms|µs)` +
		`|\d+\.\d+\s+(?:ms|µs)` +
		`|\d+\s+µs` +
		`)`)

	// goFigureRe finds a Go benchmark figure: group 1 the number, group 2 the unit.
	goFigureRe = regexp.MustCompile(`(?:^|[^\w.])(\d+(?:\.\d+)?) (ns/op|B/op|allocs/op)\b`)
	codeSpanRe = regexp.MustCompile("`([^`]+)`")
)

// goMedians are each Go benchmark's medians by unit (ns/op, B/op, allocs/op), by its name without
// Benchmark and the -GOMAXPROCS suffix: PlanUnchanged/containers=150.
type goMedians map[string]map[string]float64

// parseGoBench reads `go test -bench -benchmem` output.
func parseGoBench(text string) goMedians {
	values := map[string]map[string][]float64{}
	procs := regexp.MustCompile(`-\d+$`)
	for line := range strings.SplitSeq(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := procs.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		if values[name] == nil {
			values[name] = map[string][]float64{}
		}
		// f[1] is the iteration count; then value-unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			values[name][f[i+1]] = append(values[name][f[i+1]], v)
		}
	}
	m := goMedians{}
	for name, units := range values {
		m[name] = map[string]float64{}
		for unit, vs := range units {
			slices.Sort(vs)
			n := len(vs)
			if n%2 == 1 {
				m[name][unit] = vs[n/2]
			} else {
				m[name][unit] = (vs[n/2-1] + vs[n/2]) / 2
			}
		}
	}
	return m
}

// inRun says whether fig appears in the run's text as a whole figure: not the tail of a longer number
// (5.7ms in 15.7ms) nor the head of one.
func inRun(run, fig string) bool {
	for i := 0; ; {
		j := strings.Index(run[i:], fig)
		if j < 0 {
			return false
		}
		at := i + j
		end := at + len(fig)
		before := at == 0 || !strings.ContainsRune("0123456789.", rune(run[at-1]))
		after := end == len(run) || !isWordByte(run[end])
		if before && after {
			return true
		}
		i = at + 1
	}
}

func isWordByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// checkFigures returns, as "doc:line: why", every figure of text (the document doc) that is not in the
// run: e2e is the end-to-end output, runPath its repository path, med the Go medians.
func checkFigures(doc, text, runPath, e2e string, med goMedians) []string {
	var errs []string
	lineOf := func(off int) int { return strings.Count(text[:off], "\n") + 1 }
	quoted := false
	for _, m := range figureRe.FindAllStringSubmatchIndex(text, -1) {
		if m[3] < len(text) && isWordByte(text[m[3]]) {
			continue // a word that starts like a figure: 5msec
		}
		quoted = true
		fig := strings.Join(strings.Fields(text[m[2]:m[3]]), " ")
		if !inRun(e2e, fig) {
			errs = append(errs, fmt.Sprintf("%s:%d: %q is not in the run %s (write a figure as the run prints it)", doc, lineOf(m[2]), fig, runPath))
		}
	}
	for i, line := range strings.Split(text, "\n") {
		figs := goFigureRe.FindAllStringSubmatch(line, -1)
		if figs == nil {
			continue
		}
		quoted = true
		var names []string
		for _, s := range codeSpanRe.FindAllStringSubmatch(line, -1) {
			n := strings.TrimPrefix(s[1], "Benchmark")
			if _, ok := med[n]; ok && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		if len(names) != 1 {
			errs = append(errs, fmt.Sprintf("%s:%d: a Go benchmark figure on a line that names %d benchmarks of the run in code spans (%v), want 1", doc, i+1, len(names), names))
			continue
		}
		for _, f := range figs {
			v, _ := strconv.ParseFloat(f[1], 64)
			want, ok := med[names[0]][f[2]]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s:%d: %s reports no %s in the run", doc, i+1, names[0], f[2]))
			} else if v != want {
				errs = append(errs, fmt.Sprintf("%s:%d: %s %s %s, but its median in the run is %s", doc, i+1, names[0], f[1], f[2],
					strconv.FormatFloat(want, 'f', -1, 64)))
			}
		}
	}
	if quoted && !strings.Contains(text, runPath) {
		errs = append(errs, fmt.Sprintf("%s: quotes figures but does not name the run %s", doc, runPath))
	}
	return errs
}

// TestDocFiguresAreFromTheRun: every figure the documents quote is in the run BENCHMARKS.md names.
func TestDocFiguresAreFromTheRun(t *testing.T) {
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(repoRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	runs := runLineRe.FindAllStringSubmatch(read("BENCHMARKS.md"), -1)
	if len(runs) != 1 {
		t.Fatalf("BENCHMARKS.md has %d lines \"Run: `internal/bench/runs/<date>-<commit>-e2e.txt`\", want 1", len(runs))
	}
	runPath := runs[0][1] + "-e2e.txt"
	for _, p := range []string{runPath, runs[0][1] + "-go.txt"} {
		if _, err := os.Stat(filepath.Join(repoRoot, p)); err != nil {
			t.Fatalf("the run BENCHMARKS.md names: %v", err)
		}
	}
	e2e, gob := read(runPath), read(runs[0][1]+"-go.txt")
	med := parseGoBench(gob)
	if len(med) == 0 {
		t.Fatalf("%s-go.txt holds no benchmark lines", runs[0][1])
	}
	for _, doc := range figureDocs {
		for _, e := range checkFigures(doc, read(doc), runPath, e2e, med) {
			t.Error(e)
		}
	}
}

// TestCheckFigures: what the check takes for a figure, and what it lets through.
func TestCheckFigures(t *testing.T) {
	const runPath = "internal/bench/runs/r-e2e.txt"
	e2e := "registration lag p50 15.7ms  p95 1173µs\nRSS 17.1 MiB\nidle 20ms (0.10% of a core)\nper container 0.125 ms per resync\n"
	med := parseGoBench("BenchmarkPlan/n=10-2  1  10 ns/op  4 B/op  1 allocs/op\n" +
		"BenchmarkPlan/n=10-2  1  20 ns/op  4 B/op  1 allocs/op\n" +
		"BenchmarkPlan/n=10-2  1  31 ns/op  5 B/op  1 allocs/op\n" +
		"BenchmarkPlan/n=10-2  1  40 ns/op  5 B/op  1 allocs/op\n" +
		"BenchmarkOther-2      1  99 ns/op\n")
	named := "\nfrom " + runPath + "\n"
	for _, tc := range []struct {
		name, text string
		bad        int // errors expected
	}{
		{"verbatim figures", "lag `15.7ms`, **1173µs**; 17.1 MiB; 0.10% of a core; 0.125 ms; 20ms", 0},
		{"a figure changed", "lag 15.8ms", 1},
		{"the tail of a longer figure", "lag 5.7ms", 1},
		{"a figure the run writes otherwise", "lag 15.7 ms, 1173 µs, 0.10 % of a core", 3},
		{"a figure wrapped across lines", "RSS 17.1\nMiB, idle 0.10% of\na core", 0},
		{"memory not in the run", "reserves 64 MiB", 1},
		{"a decimal percentage not in the run", "1.66 % more", 1},
		{"configuration is not a figure", "every 250 ms, 30 s, 15m, a 20 MB target, 17 % of the bucket", 0},
		{"Go medians", "| `Plan/n=10` | 25.5 ns/op | 4.5 B/op | 1 allocs/op |", 0},
		{"Go medians, prefixed name", "`BenchmarkPlan/n=10`: 25.5 ns/op", 0},
		{"a Go figure that is not the median", "`Plan/n=10`: 20 ns/op, 5 B/op", 2},
		{"a Go figure of no named benchmark", "planning: 25.5 ns/op", 1},
		{"a Go figure on a line that names two", "`Plan/n=10` 25.5 ns/op, `Other` 99 ns/op", 1},
		{"a unit the benchmark does not report", "`Other` 0 B/op", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := checkFigures("doc.md", tc.text+named, runPath, e2e, med)
			if len(errs) != tc.bad {
				t.Errorf("%d errors, want %d: %q", len(errs), tc.bad, errs)
			}
		})
	}
	if errs := checkFigures("doc.md", "lag 15.7ms", runPath, e2e, med); len(errs) != 1 || !strings.Contains(errs[0], "does not name the run") {
		t.Errorf("a figure without the run named: %q", errs)
	}
	if errs := checkFigures("doc.md", "no figures, every 250 ms", runPath, e2e, med); len(errs) != 0 {
		t.Errorf("a document without figures need not name the run: %q", errs)
	}
}
