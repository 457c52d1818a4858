package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/fakeecs"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
	"github.com/ecs-registrator/ecs-registrator/status"
)

// issuePolicy is the policy of issue 21's acceptance: family edge in a prod-* cluster may register
// payments-* without the mesh; everything else only its own ECS identity.
const issuePolicy = `{
  "default": "ecs-identity",
  "rules": [
    {"cluster": "prod-*", "family": "edge", "service": "*", "image": "*", "names": ["payments-*"], "ids": ["payments-*"], "connect": false}
  ]
}
`

// -policy (REGISTRATOR_POLICY) reads a file, or the JSON itself; one that does not parse stops the
// daemon with the line, column and reason.
func TestParseConfigPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "policy.json")
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(good, []byte(issuePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("{\n  \"default\": \"ecs-identity\",\n  \"rules\": [{\"famly\": \"edge\", \"names\": []}]\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     func(string) string
		want    string // the policy's default, "" for none
		wantErr string
	}{
		{name: "no policy", env: env()},
		{name: "a file", args: []string{"-policy", good}, env: env(), want: "ecs-identity"},
		{name: "the environment", env: env("REGISTRATOR_POLICY", good), want: "ecs-identity"},
		{name: "inline", env: env("REGISTRATOR_POLICY", `{"default": "deny"}`), want: "deny"},
		{name: "the flag wins", args: []string{"-policy", `{"default": "allow"}`}, env: env("REGISTRATOR_POLICY", good), want: "allow"},
		{name: "gliderlabs mode too", args: []string{"-policy", good, "consul://"}, env: env(), want: "ecs-identity"},
		{name: "an unknown field: line, column and reason", args: []string{"-policy", bad}, env: env(),
			wantErr: "-policy: " + bad + `:3:14: rule 1: unknown field "famly"`},
		{name: "an unknown default", env: env("REGISTRATOR_POLICY", `{"default": "maybe"}`),
			wantErr: `-policy: inline:1:13: unknown default "maybe": it is allow, deny or ecs-identity`},
		{name: "a missing file", args: []string{"-policy", filepath.Join(dir, "missing.json")}, env: env(), wantErr: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseConfig(tc.args, tc.env, io.Discard)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case tc.want == "" && c.core.Policy != nil, tc.want != "" && (c.core.Policy == nil || string(c.core.Policy.Default()) != tc.want):
				t.Fatalf("policy %+v, want default %q", c.core.Policy, tc.want)
			}
		})
	}
}

// TestPolicyEndToEnd is issue 21's acceptance: the daemon runs with its policy against real dockerd
// and Consul and the stand-in ECS agent. Within 5 s of the containers' start, family orders registers
// orders and family edge payments-edge; family rogue asking for payments, a container without ECS
// labels asking for payments, family rogue squatting <node>:orders:8080, and family edge asking for
// payments-api in the mesh are kept out (no sidecar either), each with a problem on /v1/status that
// names the rule or default.
func TestPolicyEndToEnd(t *testing.T) {
	t.Parallel()
	docker := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	fake := fakeecs.Start(t, docker)
	a := consul.API()
	file := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(file, []byte(issuePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	base := "http://" + listen
	d := startDaemonArgs(t, consul, listen, []string{"-policy", file}, "AWS_EC2_METADATA_DISABLED=true",
		"REGISTRATOR_ECS_AGENT_URI="+fake.AgentURL(), "REGISTRATOR_ECS_TMDS_URI="+fake.TMDSURL())
	testenv.Eventually(t, 15*time.Second, "daemon never ready", d.ready)

	// A task container in cluster prod-e2e, as the agent labels it, publishing 8080.
	task := func(family string, w testenv.Workload) string {
		w = fakeecs.NewTask(t, family).Container("app", w)
		w.Labels[ecsmeta.LabelCluster] = "prod-e2e"
		w.TCP, w.Publish = []int{8080}, true
		return startPublished(t, docker, w)
	}
	label := func(kv ...string) testenv.Workload {
		w := testenv.Workload{Labels: map[string]string{}}
		for i := 0; i+1 < len(kv); i += 2 {
			w.Labels[kv[i]] = kv[i+1]
		}
		return w
	}
	squatID := consul.Node + ":orders:8080"
	meshed := label("SERVICE_NAME", "payments-api", "SERVICE_CONNECT", "true")
	meshed.Hold = []int{desired.DefaultSidecarPort} // the sidecar's port, published
	began := time.Now()
	orders := task("orders", label("SERVICE_NAME", "orders"))
	rogue := task("rogue", label("SERVICE_NAME", "payments"))
	plainW := label("SERVICE_NAME", "payments")
	plainW.Name, plainW.TCP, plainW.Publish = fmt.Sprintf("policy-plain-%d", testenv.FreePort(t)), []int{8080}, true
	plain := startPublished(t, docker, plainW)
	squat := task("rogue", label("SERVICE_NAME", "rogue", "SERVICE_ID", squatID))
	edge := task("edge", label("SERVICE_NAME", "payments-edge"))
	edgeMesh := task("edge", meshed)

	registered := func(name, containerID string) bool {
		es, _, err := a.Catalog().Service(name, "", nil)
		return err == nil && len(es) == 1 && es[0].ServiceMeta[desired.MetaContainerID] == containerID
	}
	kept := map[string]struct{ key, says string }{
		rogue:    {"SERVICE_NAME", `service name "payments" refused by the policy's default (ecs-identity), which allows this task the names rogue`},
		plain:    {"SERVICE_NAME", `service name "payments" refused by the policy's default (ecs-identity), which allows nothing to a container without ECS labels`},
		squat:    {"SERVICE_ID", fmt.Sprintf("service ID %q refused by the policy's default (ecs-identity)", squatID)},
		edgeMesh: {"SERVICE_CONNECT", `the service mesh (a sidecar) for "payments-api" refused by policy rule 1 (cluster prod-*, family edge, service *, image *), which allows the names payments-*`},
	}
	var snap status.Snapshot
	explain := func() string {
		var out []string
		for id := range kept {
			c, _ := status.Find(snap.Containers, id)
			out = append(out, fmt.Sprintf("%s %s: %+v", c.Name, c.State, c.Problems))
		}
		return strings.Join(out, "\n")
	}
	took := testenv.EventuallyExplain(t, 5*time.Second, func() bool {
		if !registered("orders", orders) || !registered("payments-edge", edge) {
			return false
		}
		if err := json.Unmarshal(testenv.Get(t, base+"/v1/status", http.StatusOK), &snap); err != nil {
			t.Fatal(err)
		}
		for id, want := range kept {
			c, ok := status.Find(snap.Containers, id)
			if !ok || c.State != status.StateNotRegistered || len(c.Problems) != 1 {
				return false
			}
			if p := c.Problems[0]; p.Severity != "error" || p.Key != want.key || p.Refused == "" || !strings.Contains(p.Message, want.says) {
				return false
			}
		}
		return true
	}, explain)
	t.Logf("the policy's verdicts were all in force %v after the last container started (%v after the first)",
		took.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

	// Kept out means out of Consul: no payments, no squatted ID, no payments-api, no sidecar.
	for _, name := range []string{"payments", "payments-api", "payments-api" + desired.SidecarSuffix, "rogue"} {
		if es, _, err := a.Catalog().Service(name, "", nil); err != nil || len(es) != 0 {
			t.Errorf("%s is in the catalog (%v): %+v", name, err, es)
		}
	}
	if s, _, err := a.Agent().Service(squatID, nil); err == nil {
		t.Errorf("the squatted ID %s is registered: %+v", squatID, s)
	}
	owned, err := a.Agent().ServicesWithFilter(fmt.Sprintf("Meta[%q] == %q", desired.MetaExternalSource, desired.ExternalSource))
	if err != nil {
		t.Fatal(err)
	}
	// Only this test's containers: other tests' run on the same dockerd, and ECS identity lets their
	// task containers register their families.
	for id, s := range owned {
		c := s.Meta[desired.MetaContainerID]
		switch {
		case s.Kind == api.ServiceKindConnectProxy && slices.Contains([]string{orders, rogue, plain, squat, edge, edgeMesh}, c):
			t.Errorf("a sidecar %s is registered", id)
		case slices.Contains([]string{rogue, plain, squat, edgeMesh}, c):
			t.Errorf("%s of container %.12s is registered", id, c)
		}
	}

	// The page says the policy; the metric counts the refusals by kind.
	page := string(testenv.Get(t, base+"/", http.StatusOK))
	if !strings.Contains(page, "policy <b>ecs-identity</b> by default, 1 rule") || snap.Daemon.Policy != (status.Policy{Set: true, Source: file, Default: "ecs-identity", Rules: 1}) {
		t.Errorf("the status does not show the policy: %+v", snap.Daemon.Policy)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(testenv.Get(t, base+"/metrics", http.StatusOK))))
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	if mf := families["ecsr_policy_refusals_total"]; mf != nil {
		for _, m := range mf.GetMetric() {
			counted[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if counted[desired.RefusedName] < 2 || counted[desired.RefusedID] < 1 || counted[desired.RefusedMesh] < 1 || len(counted) != 3 {
		t.Errorf("ecsr_policy_refusals_total by kind = %v, want name >= 2, id >= 1, mesh >= 1 and no other kind", counted)
	}
}

// startPublished starts a workload that publishes ports. dockerd takes each host port from the
// kernel's ephemeral range, where another dockerd on the machine (the second engine the suite runs)
// may already listen: the start then fails with "address already in use", and dockerd's next try
// takes the next port.
func startPublished(t *testing.T, docker *client.Client, w testenv.Workload) string {
	t.Helper()
	id := testenv.Create(t, docker, w)
	for try := 0; ; try++ {
		err := docker.ContainerStart(t.Context(), id, container.StartOptions{})
		if err == nil {
			return id
		}
		if !strings.Contains(err.Error(), "address already in use") || try == 1000 {
			t.Fatalf("start %s: %v", w.Name, err)
		}
	}
}
