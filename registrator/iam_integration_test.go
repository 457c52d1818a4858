package registrator_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	consulagent "github.com/ecs-registrator/ecs-registrator/registrator/consul"
)

// IAM login end to end: a real Consul with ACLs on, an aws-iam auth method whose STS endpoint is a
// fake, and a binding rule giving the daemon's role the minimal policy. The daemon logs in with its
// AWS credentials, registers, logs in again after its token is deleted on the server and registers
// its services again with the new one (the agent syncs them to the catalog with it), and leaves the
// token when it stops.
func TestIAMLogin(t *testing.T) {
	d := testenv.Docker(t)
	consul := testenv.StartConsulACL(t)
	sts := testenv.StartFakeSTS(t, "arn:aws:sts::123456789012:assumed-role/ecs-registrator/task-1", "123456789012")
	m := consul.API()
	if _, _, err := m.ACL().PolicyCreate(&api.ACLPolicy{Name: "registrator", Rules: consulagent.ACLPolicy}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.ACL().RoleCreate(&api.ACLRole{Name: "registrator", Policies: []*api.ACLRolePolicyLink{{Name: "registrator"}}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.ACL().AuthMethodCreate(&api.ACLAuthMethod{Name: "aws", Type: "aws-iam", MaxTokenTTL: 10 * time.Minute,
		TokenLocality: "local", Config: map[string]any{
			"BoundIAMPrincipalARNs": []string{"arn:aws:iam::123456789012:role/ecs-registrator"},
			"STSEndpoint":           sts.URL, "ServerIDHeaderValue": "consul.test",
		}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.ACL().BindingRuleCreate(&api.ACLBindingRule{AuthMethod: "aws", BindType: api.BindingRuleBindTypeRole,
		BindName: "registrator"}, nil); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
	t.Setenv("AWS_REGION", "us-east-1")

	agent, err := consulagent.NewAgent(consul.Addr(), consulagent.WithIAMLogin("aws", "consul.test", ecsmeta.Credentials()))
	if err != nil {
		t.Fatal(err)
	}
	e := runWith(t, d, consul, agent)
	e.waitReady(t)
	first := testenv.Start(t, d, testenv.Workload{Name: unique(t, "iam"), TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_NAME": "iam", "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_INTERVAL": "1s"}})
	e.waitServices(t, first, 1, 10*time.Second)
	// The catalog's view (the servers'), which the agent keeps up to date with the token each service
	// was registered with.
	catalogPassing := func() int {
		es, _, err := m.Health().Service("iam", "", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range es {
			if e.Service.Meta["container-id"] == first {
				n++
			}
		}
		return n
	}
	testenv.Eventually(t, 10*time.Second, "the first service never passed in the catalog", func() bool { return catalogPassing() == 1 })
	tokens := func() []*api.ACLTokenListEntry {
		l, _, err := m.ACL().TokenListFiltered(api.ACLTokenFilterOptions{AuthMethod: "aws"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if n := len(tokens()); n != 1 || sts.Calls.Load() == 0 {
		t.Fatalf("%d tokens from the auth method, %d STS calls; want one login", n, sts.Calls.Load())
	}

	// The token is deleted on the server: the next request logs in again.
	if _, err := m.ACL().TokenDelete(tokens()[0].AccessorID, nil); err != nil {
		t.Fatal(err)
	}
	second := testenv.Start(t, d, testenv.Workload{Name: unique(t, "iam"), TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_NAME": "iam"}})
	e.waitServices(t, second, 1, 10*time.Second)
	if n := len(tokens()); n != 1 || sts.Calls.Load() < 2 {
		t.Errorf("%d tokens and %d STS calls after the token was deleted; want one new login", n, sts.Calls.Load())
	}
	// The first service was registered with the deleted token: registered again with the new one, its
	// check's results still reach the catalog (else the agent logs "blocked by ACLs" and the catalog
	// keeps it passing for ever).
	testenv.Get(t, fmt.Sprintf("http://127.0.0.1:%d/fail", hostPort(t, d, first, "8080/tcp")), http.StatusOK)
	took := testenv.Eventually(t, 15*time.Second, "the first service's failing check never reached the catalog after the new login",
		func() bool { return catalogPassing() == 0 })
	t.Logf("the failing check reached the catalog %v after the failure", took.Round(time.Millisecond))

	// A clean exit leaves the token: the agent keeps syncing this host's services with it (a check
	// that fails, mirrored health that expires) until it expires with the auth method's MaxTokenTTL.
	e.stop()
	if n := len(tokens()); n != 1 {
		t.Errorf("%d tokens left after a clean exit, want the daemon's one", n)
	}
}
