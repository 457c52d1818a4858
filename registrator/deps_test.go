package registrator_test

import (
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// The core writes through its Agent interface and learns about AWS through ecsmeta (after tailscale's
// tstest/deptest): it imports no Consul client, no AWS SDK of its own, neither its own Consul adapter nor
// the status view, and Consul's client is not among its dependencies at all. An import this test
// refuses belongs in registrator/consul, ecsmeta or cmd/ecs-registrator.
func TestCoreImportsNoClient(t *testing.T) {
	imports, deps := testenv.ImportsAndDeps(t)
	under := func(p, root string) bool { return p == root || strings.HasPrefix(p, root+"/") }
	for _, p := range imports {
		for _, bad := range []string{"github.com/hashicorp/consul", "github.com/aws",
			"github.com/ecs-registrator/ecs-registrator/registrator/consul", "github.com/ecs-registrator/ecs-registrator/status"} {
			if under(p, bad) {
				t.Errorf("the core imports %s", p)
			}
		}
	}
	for _, p := range deps {
		if under(p, "github.com/hashicorp/consul") {
			t.Errorf("the core depends on %s", p)
		}
	}
}
