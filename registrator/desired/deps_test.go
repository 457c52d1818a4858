package desired_test

import (
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// Imports follow the data (after tailscale's tstest/deptest): the core imports this package, so this
// package depends on nothing of the core, nor on the Consul adapter, the status view or a Consul
// client, and imports no AWS SDK of its own (ECS facts come through ecsmeta's types). What needs them
// belongs in registrator, registrator/consul or ecsmeta.
func TestDesiredImportsNothingOfTheCore(t *testing.T) {
	imports, deps := testenv.ImportsAndDeps(t)
	const mod = "github.com/ecs-registrator/ecs-registrator/"
	under := func(p, root string) bool { return p == root || strings.HasPrefix(p, root+"/") }
	for _, p := range imports {
		if under(p, "github.com/aws") {
			t.Errorf("registrator/desired imports %s", p)
		}
	}
	for _, p := range deps {
		if p == mod+"registrator" || under(p, mod+"registrator/consul") || under(p, mod+"status") ||
			under(p, "github.com/hashicorp/consul") {
			t.Errorf("registrator/desired depends on %s", p)
		}
	}
}
