package testenv

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// ImportsAndDeps is what `go list` says of the package in the current directory: its direct imports
// and all its dependencies, read from the module cache (GOPROXY=off: a missing module is an error,
// never a download). The layout's tests (after tailscale's tstest/deptest) keep imports following
// the data with it.
func ImportsAndDeps(t testing.TB) (imports, deps []string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`+"\n--\n"+`{{join .Deps "\n"}}`, ".")
	cmd.Env = append(os.Environ(), "GOPROXY=off")
	out, err := cmd.Output()
	if err != nil {
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	i, d, ok := strings.Cut(string(out), "\n--\n")
	if !ok {
		t.Fatalf("go list printed %q", out)
	}
	return strings.Fields(i), strings.Fields(d)
}
