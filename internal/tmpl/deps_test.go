package tmpl

import (
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// TestStandardLibraryOnly: the engine imports the standard library only, and never text/template,
// whose executor is what it replaces (see doc.go). Its tests may import more. It only runs go list,
// so it runs under -short too.
func TestStandardLibraryOnly(t *testing.T) {
	t.Parallel()
	out := testenv.GoList(t, "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".")
	self := false
	for line := range strings.Lines(out) {
		pkg, standard, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch {
		case pkg == "github.com/ecs-registrator/ecs-registrator/internal/tmpl":
			self = true
		case standard != "true":
			t.Errorf("internal/tmpl depends on %s: it must import the standard library only", pkg)
		case pkg == "text/template" || pkg == "html/template":
			t.Errorf("internal/tmpl depends on %s: its executor is what this package replaces", pkg)
		}
	}
	if !self {
		t.Fatalf("go list -deps did not list internal/tmpl itself: is its output what this test reads?\n%s", out)
	}
}
