package packaging

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// The shipped policy is ecs-identity with no rules: a task registers its own family or ECS service
// and nothing else, a container without ECS labels nothing; the daemon accepts the file.
func TestPolicyExample(t *testing.T) {
	pol, err := desired.ParsePolicy(read(t, "policy/ecs-identity.json"), "policy/ecs-identity.json")
	if err != nil {
		t.Fatal(err)
	}
	if pol.Default() != desired.DefaultECSIdentity || pol.Rules() != 0 {
		t.Fatalf("default %s with %d rules, want ecs-identity and none", pol.Default(), pol.Rules())
	}
	opts := desired.Options{Node: "ip-10-0-1-23", AdvertiseIP: netip.MustParseAddr("10.0.1.23"), OptIn: true, Policy: pol}
	container := func(family, name string) desired.Container {
		c := desired.Container{ID: "0123456789ab", Name: "c", Image: "img", Running: true, NetworkMode: "bridge",
			Labels: map[string]string{"SERVICE_NAME": name}, Ports: []desired.Port{{Port: 8080, Proto: "tcp", HostPort: 32768}}}
		if family != "" {
			c.Task = &ecsmeta.Task{Cluster: "prod", ARN: "arn:aws:ecs:eu-west-1:111122223333:task/prod/1a2b", Family: family, Container: "app"}
		}
		return c
	}
	for _, tc := range []struct {
		family, name string
		registered   bool
	}{{"orders", "orders", true}, {"rogue", "orders", false}, {"", "orders", false}} {
		if r := desired.Desired(container(tc.family, tc.name), opts); (len(r.Services) == 1) != tc.registered {
			t.Errorf("family %q asking for %q: services %v, problems %v", tc.family, tc.name, r.Services, r.Problems)
		}
	}
	cmd := exec.Command(daemon(t), "-h")
	cmd.Env = []string{"REGISTRATOR_POLICY=policy/ecs-identity.json"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the daemon refuses the shipped policy: %v\n%s", err, out)
	}
}

// Where the policy is opt-in, the line to turn it on is there, and every example policy the
// CloudFormation parameter's description gives parses.
func TestPolicyOptIn(t *testing.T) {
	if !strings.Contains(string(read(t, "systemd/ecs-registrator.default")), "\n# REGISTRATOR_POLICY=/etc/ecs-registrator/policy.json\n") {
		t.Error("the systemd default file does not offer REGISTRATOR_POLICY commented out")
	}
	p, ok := loadTemplate(t).Parameters["RegistrationPolicy"]
	if !ok || p.Default != "" {
		t.Fatalf("the stack's RegistrationPolicy parameter is missing or on by default: %+v", p)
	}
	examples := 0
	for desc := p.Description; ; {
		i := strings.Index(desc, `{"default"`)
		if i < 0 {
			break
		}
		var raw json.RawMessage
		dec := json.NewDecoder(strings.NewReader(desc[i:]))
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("the description's example at %q is not JSON: %v", desc[i:], err)
		}
		if _, err := desired.ParsePolicy(bytes.TrimSpace(raw), "RegistrationPolicy"); err != nil {
			t.Errorf("the description's example %s: %v", raw, err)
		}
		examples++
		desc = desc[i+int(dec.InputOffset()):]
	}
	if examples == 0 {
		t.Error("the RegistrationPolicy parameter's description gives no example")
	}
}
