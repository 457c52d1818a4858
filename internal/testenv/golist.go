package testenv

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// GoList runs `go list args...` in the current directory for Linux, where the daemon ships, from the
// module cache (GOPROXY=off: a missing module is an error, never a download), and returns its output.
// The dependency tests (after tailscale's tstest/deptest) read it.
func GoList(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOPROXY=off")
	out, err := cmd.Output()
	if err != nil {
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	return string(out)
}

// ImportsAndDeps is the package in the current directory's direct imports and all its dependencies.
func ImportsAndDeps(t testing.TB) (imports, deps []string) {
	t.Helper()
	out := GoList(t, "-f", `{{join .Imports "\n"}}`+"\n--\n"+`{{join .Deps "\n"}}`, ".")
	i, d, ok := strings.Cut(out, "\n--\n")
	if !ok {
		t.Fatalf("go list printed %q", out)
	}
	return strings.Fields(i), strings.Fields(d)
}
