package main

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// Costs measured once and paid off, kept paid: the daemon must not link these again.
const (
	whyTextTemplate = "text/template's executor (html/template runs on it) looks fields up with " +
		"reflect.Value.MethodByName, so the linker keeps every exported method of every type the daemon " +
		"can reach: dropping it saved 3.7 MB of resident memory (4 MB of binary) on every host. -tags " +
		"templates run on internal/tmpl (text/template/parse is fine), the status page writes its HTML " +
		"in plain code"
	whyAWSClients = "dropping the AWS SDK's config loader and ECS client saved 8 MB of resident memory " +
		"on every host: DescribeTasks is a signed request made with the SDK's signer and credential " +
		"providers (ecsmeta)"
)

var forbiddenDeps = map[string]string{
	"text/template":                            whyTextTemplate,
	"html/template":                            whyTextTemplate,
	"github.com/aws/aws-sdk-go-v2/config":      whyAWSClients,
	"github.com/aws/aws-sdk-go-v2/service/ecs": whyAWSClients,
}

// TestDependencies fails when the daemon gains a dependency in forbiddenDeps. It runs only go list
// (from the module cache, never the network), so it runs under -short too.
func TestDependencies(t *testing.T) {
	t.Parallel()
	out := testenv.GoList(t, "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", ".")
	deps := map[string]bool{}
	importers := map[string][]string{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		deps[f[0]] = true
		for _, imp := range f[1:] {
			importers[imp] = append(importers[imp], f[0])
		}
	}
	if !deps["github.com/ecs-registrator/ecs-registrator/internal/tmpl"] {
		t.Fatalf("go list -deps did not list internal/tmpl: is its output what this test reads?\n%s", out)
	}
	for _, pkg := range slices.Sorted(maps.Keys(forbiddenDeps)) {
		if deps[pkg] {
			t.Errorf("the daemon depends on %s (imported by %s), and must not: %s",
				pkg, strings.Join(importers[pkg], ", "), forbiddenDeps[pkg])
		}
	}
}
