package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"
)

// The operator's documents: what they name (flags, variables, metrics, files, make targets, Go tests,
// links) must exist, or the first command an operator copies from them fails. Paths in a document are
// repository paths, or relative to the document's own directory.
var operatorDocs = []string{"README.md", "packaging/README.md"}

// repoRoot is the repository, seen from this package's directory (where go test runs).
const repoRoot = "../.."

// otherToolsFlags are flags, or flag-shaped words, that the documents write as a bare `-flag` code span
// but that belong to another tool. Each entry says whose it is; an entry the documents no longer name
// fails the test, so that the list does not outlive its reason.
var otherToolsFlags = map[string]string{
	"-e":             "docker run's -e: how a SERVICE_* environment variable reaches a container",
	"--network":      "docker run's --network container:<app>, for a proxy in the application's namespace",
	"-client":        "the Consul agent's -client, for an agent that tasks reach",
	"-sidecar-proxy": "not a flag: the suffix of the IDs Consul gives sidecar services",
	"--purge":        "docker manifest push --purge",
	"-H":             "curl's -H, for the X-Consul-Token header of a request to the agent",
	"--filter":       "aws ecs list-container-instances --filter, a cluster query",
	"-max-token-ttl": "consul acl auth-method create -max-token-ttl",
	"-admin-bind":    "consul connect envoy -admin-bind, Envoy's admin address",
}

// retiredMetrics are metric names the documents give as what a metric used to be called.
var retiredMetrics = map[string]string{
	"ecsr_reconcile_duration_seconds": "README, upgrading: now ecsr_evaluate_duration_seconds",
}

// generatedDirs are made by the Makefile (build, test, image), not checked in: paths under them are not
// checked.
var generatedDirs = map[string]bool{"bin": true, "artifacts": true, "dist": true}

// mdDoc is a markdown document taken apart into what the checks read.
type mdDoc struct {
	name     string   // repository path
	text     string   // the whole document
	spans    []mdCode // inline code spans
	blocks   []mdCode // lines of fenced code blocks, with backslash continuations joined
	links    []mdCode // link targets outside code
	headings []string
	// goFiles are bare file names (`plan.go`) in code spans, with the directory of the list item that
	// names them ("- `registrator`: ... `plan.go`"), or "" outside such an item.
	goFiles []mdGoFile
}

type mdCode struct {
	line int
	text string
}

type mdGoFile struct {
	line      int
	dir, name string
}

var (
	fenceRe   = regexp.MustCompile("^\\s*(```+|~~~+)\\s*(\\S*)")
	headingRe = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	linkRe    = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	itemDirRe = regexp.MustCompile("^\\s*[-*] `([A-Za-z0-9_./-]+)`")
	goFileRe  = regexp.MustCompile(`^[A-Za-z0-9_]+\.go$`)
)

func parseMarkdown(t *testing.T, name string) *mdDoc {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	d := &mdDoc{name: name, text: string(b)}
	lines := strings.Split(d.text, "\n")
	// prose is the document outside fenced blocks, line for line (fenced lines blanked), so that an
	// offset in it gives a line number.
	prose := make([]string, len(lines))
	fence := ""
	var cont strings.Builder
	contLine := 0
	for i, l := range lines {
		if m := fenceRe.FindStringSubmatch(l); m != nil {
			switch {
			case fence == "":
				fence = m[1]
				continue
			case strings.HasPrefix(m[1], fence[:1]) && len(m[1]) >= len(fence) && m[2] == "":
				fence = ""
				continue
			}
		}
		if fence != "" {
			if cont.Len() == 0 {
				contLine = i + 1
			}
			if s, ok := strings.CutSuffix(strings.TrimRight(l, " "), "\\"); ok {
				cont.WriteString(s + " ")
				continue
			}
			cont.WriteString(l)
			d.blocks = append(d.blocks, mdCode{contLine, cont.String()})
			cont.Reset()
			continue
		}
		prose[i] = l
		if m := headingRe.FindStringSubmatch(l); m != nil {
			d.headings = append(d.headings, m[2])
		}
	}
	text := strings.Join(prose, "\n")
	lineAt := func(off int) int { return strings.Count(text[:off], "\n") + 1 }

	// Code spans: a run of n backticks up to the next run of exactly n; no closer, no span. Each span
	// is blanked in masked (newlines kept), so that links inside code are not links.
	masked := []byte(text)
	itemDir := ""
	itemDirs := map[int]string{} // line -> the directory of the list item it is in
	for i, l := range prose {
		switch {
		case itemDirRe.MatchString(l):
			itemDir = ""
			if dir := itemDirRe.FindStringSubmatch(l)[1]; isDir(filepath.Join(repoRoot, dir)) {
				itemDir = dir
			}
		case strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(strings.TrimSpace(l), "- "):
			itemDir = ""
		}
		itemDirs[i+1] = itemDir
	}
	for i := 0; i < len(text); {
		if text[i] != '`' {
			i++
			continue
		}
		n := 1
		for i+n < len(text) && text[i+n] == '`' {
			n++
		}
		end := -1
		for j := i + n; j < len(text); {
			if text[j] != '`' {
				j++
				continue
			}
			k := 1
			for j+k < len(text) && text[j+k] == '`' {
				k++
			}
			if k == n {
				end = j
				break
			}
			j += k
		}
		if end < 0 {
			i += n
			continue
		}
		content := strings.ReplaceAll(text[i+n:end], "\n", " ")
		if len(content) > 1 && content[0] == ' ' && content[len(content)-1] == ' ' {
			content = content[1 : len(content)-1]
		}
		line := lineAt(i)
		d.spans = append(d.spans, mdCode{line, content})
		if goFileRe.MatchString(content) {
			d.goFiles = append(d.goFiles, mdGoFile{line, itemDirs[line], content})
		}
		for j := i; j < end+n; j++ {
			if masked[j] != '\n' {
				masked[j] = ' '
			}
		}
		i = end + n
	}
	for _, m := range linkRe.FindAllSubmatchIndex(masked, -1) {
		d.links = append(d.links, mdCode{lineAt(m[0]), string(masked[m[2]:m[3]])})
	}
	return d
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// code is every code span and code block line of the document.
func (d *mdDoc) code() []mdCode { return slices.Concat(d.spans, d.blocks) }

// githubAnchors are the anchors GitHub gives the document's headings: the rendered text lower-cased,
// every character but letters, digits, marks, '-', '_' and spaces dropped, spaces turned into '-',
// and "-1", "-2" ... appended to repeats.
func (d *mdDoc) githubAnchors() map[string]bool {
	link := regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	seen := map[string]int{}
	out := map[string]bool{}
	for _, h := range d.headings {
		h = link.ReplaceAllString(h, "$1")
		h = strings.NewReplacer("`", "", "*", "").Replace(h)
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		out[a] = true
	}
	return out
}

// flagsOf are the flag names a flag set's usage lists ("  -name type" lines).
func flagsOf(usage string) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -(\S+)`).FindAllStringSubmatch(usage, -1) {
		out[m[1]] = true
	}
	return out
}

// commandFlags are the real flag sets, by command: "" is the daemon (gliderlabs's flags included),
// the others its subcommands. They are read from each one's -h, so that the test sees exactly what
// the binary parses.
func commandFlags(t *testing.T) map[string]map[string]bool {
	t.Helper()
	var daemon bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &daemon); err == nil {
		t.Fatal("parseConfig -h: no error")
	}
	sets := map[string]map[string]bool{"": flagsOf(daemon.String())}
	for _, sub := range []string{"status", "healthcheck", "version"} {
		var u bytes.Buffer
		subcommand(sub, []string{"-h"}, io.Discard, &u)
		sets[sub] = flagsOf(u.String())
	}
	var u bytes.Buffer
	sidecarFor([]string{"-h"}, io.Discard, &u)
	sets["sidecar-for"] = flagsOf(u.String())
	for cmd, set := range sets {
		if len(set) == 0 && cmd != "version" {
			t.Fatalf("no flags read from the usage of %q", cmd)
		}
	}
	return sets
}

var (
	flagTokenRe = regexp.MustCompile(`^(--?[A-Za-z][A-Za-z0-9_-]*)(=.*)?$`)
	envAssignRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
	shellSplit  = regexp.MustCompile(`&&|\|\||[;|]|\$\(`)
)

// isBinary: the word is how the documents call the daemon: on the PATH, as built (bin/ecs-registrator),
// installed (/usr/local/bin), in the image (/ecs-registrator), or under gliderlabs's name (registrator,
// /bin/registrator), whose command line it takes. Not a directory (cmd/ecs-registrator) or a log group.
func isBinary(word string) bool {
	dir, base := path.Split(word)
	return (base == "ecs-registrator" || base == "registrator") &&
		slices.Contains([]string{"", "/", "bin/", "./bin/", "/bin/", "/usr/local/bin/"}, dir)
}

// daemonCommands finds the daemon's command lines in a line of code: the command word is the binary
// (after VAR=value assignments and sudo), or it is run with docker exec. It returns the subcommand ("" for
// the daemon) and the words after it, up to "--" (what follows is sidecar-for's proxy command) or a
// shell comment.
func daemonCommands(code string) (cmds [][]string) {
	if i := strings.Index(code, " #"); i >= 0 {
		code = code[:i]
	}
	for _, part := range shellSplit.Split(code, -1) {
		words := strings.Fields(part)
		for len(words) > 0 && (envAssignRe.MatchString(words[0]) || words[0] == "sudo" || words[0] == "$") {
			words = words[1:]
		}
		switch {
		case len(words) == 0:
			continue
		case isBinary(words[0]):
			words = words[1:]
		case len(words) > 2 && words[0] == "docker" && words[1] == "exec":
			// The binary in the image is /ecs-registrator: a word with a slash, not the container's name.
			i := slices.IndexFunc(words[2:], func(w string) bool { return strings.Contains(w, "/") && isBinary(w) })
			if i < 0 {
				continue
			}
			words = words[2+i+1:]
		default:
			continue
		}
		sub := ""
		if len(words) > 0 && slices.Contains([]string{"status", "healthcheck", "version", "sidecar-for"}, words[0]) {
			sub, words = words[0], words[1:]
		}
		if i := slices.Index(words, "--"); i >= 0 {
			words = words[:i]
		}
		cmds = append(cmds, append([]string{sub}, words...))
	}
	return cmds
}

// TestDocsNameOnlyWhatExists fails when an operator's document names a flag, a REGISTRATOR_* or ECSR_*
// variable, a metric, a repository path, a make target, a Go test or an in-repository link (or its
// anchor) that does not exist.
func TestDocsNameOnlyWhatExists(t *testing.T) {
	t.Parallel()
	sets := commandFlags(t)
	anyFlag := map[string]bool{}
	for _, set := range sets {
		for f := range set {
			anyFlag[f] = true
		}
	}
	// The variables the daemon reads: every one parseConfig asks for (REGISTRATOR_<FLAG> of each flag).
	readEnv := map[string]bool{}
	if _, err := parseConfig(nil, func(k string) string { readEnv[k] = true; return "" }, io.Discard); err != nil {
		t.Fatalf("parseConfig with no flags: %v", err)
	}
	targets := makeTargets(t)
	tests := goTests(t)
	allowUsed := map[string]bool{}

	for _, name := range operatorDocs {
		d := parseMarkdown(t, name)
		at := func(line int) string { return fmt.Sprintf("%s:%d", name, line) }

		// Flags: the daemon's command lines, and bare `-flag` code spans.
		for _, c := range d.code() {
			for _, cmd := range daemonCommands(c.text) {
				sub, words := cmd[0], cmd[1:]
				for _, w := range words {
					m := flagTokenRe.FindStringSubmatch(w)
					if m == nil {
						continue
					}
					if f := strings.TrimLeft(m[1], "-"); !sets[sub][f] {
						t.Errorf("%s: `%s`: ecs-registrator %s has no flag %s", at(c.line), c.text, cmp.Or(sub, "(the daemon)"), m[1])
					}
				}
			}
		}
		for _, c := range d.spans {
			if !strings.HasPrefix(c.text, "-") {
				continue
			}
			// The first word only: what follows is the flag's value. A trailing colon is an error
			// message's (`-policy: /etc/...`).
			m := flagTokenRe.FindStringSubmatch(strings.TrimSuffix(strings.Fields(c.text)[0], ":"))
			if m == nil {
				continue
			}
			if _, ok := otherToolsFlags[m[1]]; ok {
				allowUsed[m[1]] = true
				continue
			}
			if !anyFlag[strings.TrimLeft(m[1], "-")] {
				t.Errorf("%s: `%s`: no command of ecs-registrator has the flag %s (another tool's? add it to otherToolsFlags with why)", at(c.line), c.text, m[1])
			}
		}

		// REGISTRATOR_* variables, anywhere in the text.
		for _, m := range regexp.MustCompile(`\bREGISTRATOR_[A-Z][A-Z0-9_]*\b`).FindAllStringIndex(d.text, -1) {
			v := d.text[m[0]:m[1]]
			if !readEnv[v] {
				t.Errorf("%s: %s: the daemon reads no such variable (REGISTRATOR_<FLAG> of a flag)", at(strings.Count(d.text[:m[0]], "\n")+1), v)
			}
		}

		// ECSR_* variables (the tests', the bench's and the scripts' knobs): read somewhere outside
		// the documents.
		for _, m := range regexp.MustCompile(`\bECSR_[A-Z][A-Z0-9_]*\b`).FindAllStringIndex(d.text, -1) {
			if v := d.text[m[0]:m[1]]; !readOutsideDocs(t, v) {
				t.Errorf("%s: %s: no script, Makefile or Go file reads it", at(strings.Count(d.text[:m[0]], "\n")+1), v)
			}
		}

		// Metrics: a Go file (not a test) names each one, in quotes.
		for _, m := range regexp.MustCompile(`\becsr_[a-z][a-z0-9_]*\b`).FindAllStringIndex(d.text, -1) {
			v := d.text[m[0]:m[1]]
			if _, retired := retiredMetrics[v]; retired {
				allowUsed[v] = true
			} else if !definedInGo(t, `"`+v+`"`) {
				t.Errorf("%s: %s: no such metric (no Go file names it)", at(strings.Count(d.text[:m[0]], "\n")+1), v)
			}
		}

		// Repository paths in code, and top-level documents in the text.
		for _, c := range d.code() {
			for _, p := range repoPaths(c.text, name) {
				checkPath(t, at(c.line), p)
			}
		}
		// A document named in the text (BENCHMARKS.md) is the document's neighbour or at the top.
		for _, m := range regexp.MustCompile(`\b[A-Z][A-Z0-9_-]*\.md\b`).FindAllStringIndex(d.text, -1) {
			md := d.text[m[0]:m[1]]
			if !exists(filepath.Join(repoRoot, path.Dir(name), md)) && !exists(filepath.Join(repoRoot, md)) {
				t.Errorf("%s: %s: no such document in %s or at the top of the repository", at(strings.Count(d.text[:m[0]], "\n")+1), md, path.Dir(name))
			}
		}
		for _, f := range d.goFiles {
			if f.dir != "" {
				checkPath(t, at(f.line), path.Join(f.dir, f.name))
			} else if !anyFileNamed(t, f.name) {
				t.Errorf("%s: `%s`: no such file in the repository", at(f.line), f.name)
			}
		}

		// make targets.
		for _, c := range d.code() {
			for _, m := range regexp.MustCompile(`(?:^|[\s;&|(])make((?:\s+[A-Za-z0-9_.=/:$-]+)+)`).FindAllStringSubmatch(c.text, -1) {
				for _, w := range strings.Fields(m[1]) {
					if strings.Contains(w, "=") {
						continue // a variable: make image IMAGE=name:tag
					}
					if !regexp.MustCompile(`^[a-z][a-z0-9-]*$`).MatchString(w) {
						break
					}
					if !targets[w] {
						t.Errorf("%s: `%s`: the Makefile has no target %q", at(c.line), c.text, w)
					}
				}
			}
		}

		// Go tests, fuzz targets and benchmarks, anywhere in the text; Name* is a prefix.
		for _, m := range regexp.MustCompile(`\b(?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*\*?`).FindAllStringIndex(d.text, -1) {
			n := d.text[m[0]:m[1]]
			prefix, glob := strings.CutSuffix(n, "*")
			if !slices.ContainsFunc(tests, func(have string) bool {
				return have == n || glob && strings.HasPrefix(have, prefix)
			}) {
				t.Errorf("%s: %s: no such Go test in the repository", at(strings.Count(d.text[:m[0]], "\n")+1), n)
			}
		}

		// Links within the repository, and their anchors.
		for _, l := range d.links {
			target := l.text
			if regexp.MustCompile(`^[a-z][a-z0-9+.-]*:`).MatchString(target) {
				continue // http:, https:, mailto:
			}
			file, anchor, _ := strings.Cut(target, "#")
			file = cmp.Or(file, path.Base(name))
			p := path.Join(path.Dir(name), file)
			if !checkPath(t, at(l.line), p) || anchor == "" {
				continue
			}
			if !strings.HasSuffix(p, ".md") {
				t.Errorf("%s: %s: an anchor into a file that is not markdown", at(l.line), target)
				continue
			}
			if p == name && !d.githubAnchors()[anchor] || p != name && !parseMarkdown(t, p).githubAnchors()[anchor] {
				t.Errorf("%s: %s: %s has no heading with the anchor #%s", at(l.line), target, p, anchor)
			}
		}
	}
	for f, why := range otherToolsFlags {
		if !allowUsed[f] {
			t.Errorf("otherToolsFlags lists %s (%s), which no document names any more: remove it", f, why)
		}
	}
	for m, why := range retiredMetrics {
		if !allowUsed[m] {
			t.Errorf("retiredMetrics lists %s (%s), which no document names any more: remove it", m, why)
		}
	}
}

// repoPaths are the words of a piece of code that name a repository path: their first element is a
// checked-in top-level file or directory, or, in a document below the root, one of its own directory.
func repoPaths(code, doc string) []string {
	var out []string
	for _, w := range regexp.MustCompile("[^\\s\"'(),;=|&`]+").FindAllString(code, -1) {
		w = strings.TrimPrefix(w, "file://")
		w = strings.TrimPrefix(w, "./")
		w = strings.TrimRight(w, ".:")
		if w == "" || strings.HasPrefix(w, "/") || strings.HasPrefix(w, "~") || strings.Contains(w, "://") {
			continue
		}
		first, _, _ := strings.Cut(w, "/")
		if strings.ContainsAny(first, ":<>$@{}") {
			continue // image:tag, a placeholder, a variable, module@version
		}
		if !strings.Contains(w, "/") && !strings.Contains(w, ".") {
			continue // a word (status, cmd) is a path only with a slash or an extension
		}
		switch {
		case generatedDirs[first]:
		case exists(filepath.Join(repoRoot, first)):
			out = append(out, w)
		case path.Dir(doc) != "." && exists(filepath.Join(repoRoot, path.Dir(doc), first)):
			out = append(out, path.Join(path.Dir(doc), w))
		}
	}
	return out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// checkPath reports a repository path (a glob is fine) that names nothing.
func checkPath(t *testing.T, at, p string) bool {
	t.Helper()
	p = strings.TrimSuffix(p, "/")
	if strings.ContainsAny(p, "*?[") {
		if m, _ := filepath.Glob(filepath.Join(repoRoot, p)); len(m) > 0 {
			return true
		}
	} else if exists(filepath.Join(repoRoot, p)) {
		return true
	}
	t.Errorf("%s: %s: no such file or directory in the repository", at, p)
	return false
}

// repoFiles are the repository's files (relative, slash-separated), without .git and generated dirs.
var repoFiles = sync.OnceValues(func() ([]string, error) {
	var files []string
	err := filepath.WalkDir(repoRoot, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		if e.IsDir() && (e.Name() == ".git" || generatedDirs[rel]) {
			return filepath.SkipDir
		}
		if !e.IsDir() {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files, err
})

func walkTree(t *testing.T) []string {
	t.Helper()
	files, err := repoFiles()
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// readOutsideDocs: a file that is not markdown names the string.
func readOutsideDocs(t *testing.T, name string) bool {
	t.Helper()
	for _, p := range walkTree(t) {
		if strings.HasSuffix(p, ".md") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(repoRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(name)) {
			return true
		}
	}
	return false
}

// definedInGo: a Go file that is not a test holds the string.
func definedInGo(t *testing.T, s string) bool {
	t.Helper()
	for _, p := range walkTree(t) {
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(repoRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

func anyFileNamed(t *testing.T, name string) bool {
	return slices.ContainsFunc(walkTree(t), func(p string) bool { return path.Base(p) == name })
}

// goTests are the names of every Test, Fuzz and Benchmark function in the repository's test files.
func goTests(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)[A-Z]\w*)\(`)
	var out []string
	for _, p := range walkTree(t) {
		if !strings.HasSuffix(p, "_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(repoRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			out = append(out, string(m[1]))
		}
	}
	return out
}

// makeTargets are the Makefile's rule targets.
func makeTargets(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*::?(?:[^=]|$)`).FindAllSubmatch(b, -1) {
		for _, f := range strings.Fields(string(m[1])) {
			out[f] = true
		}
	}
	return out
}

// TestDocsNameEveryFlag fails when a command has a flag that README.md never names as `-flag` in code:
// an operator cannot use what is not written down.
func TestDocsNameEveryFlag(t *testing.T) {
	t.Parallel()
	d := parseMarkdown(t, "README.md")
	named := map[string]bool{}
	for _, c := range d.code() {
		for _, w := range strings.Fields(c.text) {
			if m := flagTokenRe.FindStringSubmatch(strings.TrimRight(w, ":,")); m != nil {
				named[strings.TrimLeft(m[1], "-")] = true
			}
		}
	}
	for cmd, set := range commandFlags(t) {
		for f := range set {
			if !named[f] {
				t.Errorf("ecs-registrator %s: the flag -%s is not in README.md", cmp.Or(cmd, "(the daemon)"), f)
			}
		}
	}
}

// TestEngineTestsExist fails when the Makefile's ENGINE_TESTS, the tests run a second time against the
// current Docker Engine, names a test that does not exist: the second pass would silently leave it out.
func TestEngineTestsExist(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ENGINE_TESTS\s*\?=\s*(.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no ENGINE_TESTS in the Makefile")
	}
	expr := strings.ReplaceAll(string(m[1]), "$$", "$")
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		t.Fatalf("ENGINE_TESTS: %v", err)
	}
	names, ok := expand(re)
	if !ok || len(names) == 0 {
		t.Fatalf("ENGINE_TESTS %s: not a list of test names (literals, groups and alternatives only)", expr)
	}
	tests := goTests(t)
	for _, n := range names {
		if !slices.Contains(tests, n) {
			t.Errorf("ENGINE_TESTS names %s, which is not a test", n)
		}
	}
}

// expand lists the strings a regular expression of literals, groups, alternatives and ^ $ matches.
func expand(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		return []string{string(re.Rune)}, re.Flags&syntax.FoldCase == 0
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText, syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpCapture:
		return expand(re.Sub[0])
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			s, ok := expand(sub)
			if !ok {
				return nil, false
			}
			out = append(out, s...)
		}
		return out, true
	case syntax.OpConcat:
		out := []string{""}
		for _, sub := range re.Sub {
			s, ok := expand(sub)
			if !ok {
				return nil, false
			}
			var next []string
			for _, a := range out {
				for _, b := range s {
					next = append(next, a+b)
				}
			}
			out = next
		}
		return out, true
	case syntax.OpCharClass:
		// The parser factors alternatives' common prefixes: (Drain|Dock) becomes D(?:rain|ock), and
		// single letters become classes ([rs]).
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i+1]-re.Rune[i] > 8 {
				return nil, false
			}
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				out = append(out, string(r))
			}
		}
		return out, true
	}
	return nil, false
}
