package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator/consul"
)

// The role tag a binding rule of type service reads, as consul-ecs documents it.
const serviceNameTag = "consul.hashicorp.com.service-name"

// securedMesh is a secured datacenter's mesh on this host: a Consul agent with ACLs (default deny)
// and Connect that containers reach, an aws-iam auth method for proxies (entity details on, a binding
// rule of type service named from the role's tag, a server ID required) against a fake STS and IAM,
// and the daemon with a token of its own.
type securedMesh struct {
	t      *testing.T
	docker *client.Client
	consul *testenv.Consul
	a      *api.Client
	iam    *testenv.FakeIAM
	image  string
	addr   string // the agent, as containers reach it
}

const meshAuthMethod, meshServerID = "ecs-proxies", "consul.test"

func startSecuredMesh(t *testing.T, roles map[string]testenv.IAMRole) *securedMesh {
	docker := testenv.Docker(t)
	gw := testenv.BridgeGateway(t, docker)
	c := testenv.StartConsulACLReachable(t, gw)
	m := &securedMesh{t: t, docker: docker, consul: c, a: c.API(), addr: fmt.Sprintf("%s:%d", gw, c.HTTP)}
	m.iam = testenv.StartFakeIAM(t, gw, "123456789012", roles)
	if _, _, err := m.a.ACL().AuthMethodCreate(&api.ACLAuthMethod{Name: meshAuthMethod, Type: "aws-iam", Config: map[string]any{
		"BoundIAMPrincipalARNs":  []string{"arn:aws:iam::123456789012:role/mesh/*"},
		"EnableIAMEntityDetails": true, "IAMEntityTags": []string{serviceNameTag},
		"STSEndpoint": m.iam.URL, "IAMEndpoint": m.iam.URL, "ServerIDHeaderValue": meshServerID,
	}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.a.ACL().BindingRuleCreate(&api.ACLBindingRule{AuthMethod: meshAuthMethod, BindType: api.BindingRuleBindTypeService,
		BindName: "${entity_tags." + serviceNameTag + "}"}, nil); err != nil {
		t.Fatal(err)
	}
	m.image = buildProxyImage(t, docker)
	// The daemon's own token: ACLs deny by default, and no policy of its own limits the names (the
	// rogue below is registered; Consul's identities are what stop it).
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d := startDaemonArgs(t, c, listen, []string{"-internal"}, "CONSUL_HTTP_TOKEN="+c.Token)
	testenv.Eventually(t, 30*time.Second, "daemon never became ready", d.ready)
	return m
}

// task starts an application container whose task role's credentials (access key key) its
// containers read from the stand-in credentials endpoint, and its proxy, which logs in with them.
func (m *securedMesh) task(name, key string, labels map[string]string) (app, proxy string) {
	t := m.t
	creds, _ := json.Marshal(map[string]string{"AccessKeyId": key, "SecretAccessKey": "secret-" + key, "Token": "session-" + key,
		"Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	app = testenv.Start(t, m.docker, testenv.Workload{Name: fmt.Sprintf("ecsr-aclmesh-%s-%d", name, testenv.FreePort(t)), TCP: []int{8080},
		Labels: labels, Env: []string{"CREDENTIALS=" + string(creds)}})
	proxy = startProxy(t, m.docker, m.image, app, []string{"CONSUL_HTTP_ADDR=" + m.addr, "AWS_REGION=us-east-1",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:8080/creds", "AWS_ENDPOINT_URL_STS=" + m.iam.URL, "AWS_ENDPOINT_URL_IAM=" + m.iam.URL},
		"-wait", "30s", "-token-check", "1s", "-consul-iam-auth-method", meshAuthMethod, "-consul-iam-server-id", meshServerID)
	return app, proxy
}

func (m *securedMesh) logs(ctx context.Context, id string) string {
	return containerLogs(ctx, m.docker, id)
}

// proxyTokens are the tokens the proxies' logins made that Consul still holds.
func (m *securedMesh) proxyTokens() int {
	toks, _, err := m.a.ACL().TokenListFiltered(api.ACLTokenFilterOptions{AuthMethod: meshAuthMethod}, nil)
	if err != nil {
		m.t.Fatal(err)
	}
	return len(toks)
}

// caller calls the client's upstream (orders, on 127.0.0.1:9191 in its namespace) through its /fetch.
func (m *securedMesh) caller(app string) func() (int, string) {
	url := fmt.Sprintf("http://%s:8080/fetch?url=http://127.0.0.1:9191/", ipOf(m.t, m.docker, app))
	return func() (int, string) {
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
}

var meshRoles = map[string]testenv.IAMRole{
	"AKIAORDERS": {Name: "orders-task", Path: "/mesh/", Tags: map[string]string{serviceNameTag: "orders"}},
	"AKIACLIENT": {Name: "client-task", Path: "/mesh/", Tags: map[string]string{serviceNameTag: "client"}},
	"AKIAROGUE":  {Name: "rogue-task", Path: "/mesh/", Tags: map[string]string{serviceNameTag: "rogue"}},
}

// In a datacenter with ACLs (default deny), each proxy logs in with its task's IAM role and gets a
// token bound to its role's service: the client reaches orders through the mesh once an intention
// allows it, a proxy whose token is deleted logs in again and serves on, a deny blocks the call, and
// the proxies' tokens are gone from Consul when their tasks stop.
func TestMeshACLEachProxyItsOwnIdentity(t *testing.T) {
	m := startSecuredMesh(t, meshRoles)
	orders, ordersProxy := m.task("orders", "AKIAORDERS", map[string]string{"SERVICE_NAME": "orders", "SERVICE_CONNECT": "true"})
	client, clientProxy := m.task("client", "AKIACLIENT", map[string]string{"SERVICE_NAME": "client", "SERVICE_CONNECT": "true",
		"SERVICE_CONNECT_UPSTREAMS": "orders:9191"})
	for _, name := range []string{"orders", "orders-sidecar-proxy", "client", "client-sidecar-proxy"} {
		testenv.EventuallyExplain(t, 60*time.Second, func() bool { return passing(t, m.a, name) == 1 },
			func() string { return name + " never passed: " + checksOf(t, m.a, name) })
	}
	// Each proxy's token is its role's service identity, and nothing more.
	toks, _, err := m.a.ACL().TokenListFiltered(api.ACLTokenFilterOptions{AuthMethod: meshAuthMethod}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var bound []string
	for _, tk := range toks {
		for _, si := range tk.ServiceIdentities {
			bound = append(bound, si.ServiceName)
		}
		if len(tk.Policies)+len(tk.Roles) > 0 {
			t.Errorf("a proxy token holds policies or roles too: %+v", tk)
		}
	}
	if strings.Join(slices.Sorted(slices.Values(bound)), ",") != "client,orders" {
		t.Errorf("the proxies' tokens are bound to %v, want client and orders", bound)
	}

	call := m.caller(client)
	explain := func() string { code, body := call(); return fmt.Sprintf("the call answered %d %q", code, body) }
	reached := func() bool { code, body := call(); return code == 200 && body == orders[:12] }
	// Default deny: intentions deny too, until one allows.
	if _, err := m.a.Connect().IntentionUpsert(&api.Intention{SourceName: "client", DestinationName: "orders", Action: api.IntentionActionAllow}, nil); err != nil {
		t.Fatal(err)
	}
	took := testenv.EventuallyExplain(t, 30*time.Second, reached, explain)
	t.Logf("client reached orders through the mesh %v after the allow", took.Round(time.Millisecond))

	// The orders proxy's token is deleted on the server (an operator, an expiry): its sidecar-for
	// logs in again and restarts the proxy with the new token, and the client reaches orders again.
	ordersToken := func() *api.ACLTokenListEntry {
		toks, _, err := m.a.ACL().TokenListFiltered(api.ACLTokenFilterOptions{ServiceName: "orders"}, nil)
		if err != nil || len(toks) > 1 {
			t.Fatalf("the orders proxy's tokens: %v %v", toks, err)
		}
		if len(toks) == 0 {
			return nil
		}
		return toks[0]
	}
	old := ordersToken()
	if old == nil {
		t.Fatal("no token for the orders proxy")
	}
	if _, err := m.a.ACL().TokenDelete(old.AccessorID, nil); err != nil {
		t.Fatal(err)
	}
	took = testenv.EventuallyExplain(t, 15*time.Second, func() bool { tk := ordersToken(); return tk != nil && tk.AccessorID != old.AccessorID },
		func() string { return "no new token for the orders proxy: " + m.logs(t.Context(), ordersProxy) })
	t.Logf("the orders proxy logged in again %v after its token was deleted", took.Round(time.Millisecond))
	took = testenv.EventuallyExplain(t, 30*time.Second, reached, explain)
	t.Logf("and the client reached orders again %v later", took.Round(time.Millisecond))
	if _, err := m.a.Connect().IntentionUpsert(&api.Intention{SourceName: "client", DestinationName: "orders", Action: api.IntentionActionDeny}, nil); err != nil {
		t.Fatal(err)
	}
	took = testenv.EventuallyExplain(t, 15*time.Second, func() bool { code, _ := call(); return code == http.StatusBadGateway }, explain)
	t.Logf("an intention deny blocked the call after %v", took.Round(time.Millisecond))

	// The tasks stop (ECS stops a task's containers): each proxy's token is logged out.
	for _, id := range []string{clientProxy, ordersProxy} {
		if err := m.docker.ContainerStop(t.Context(), id, container.StopOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.EventuallyExplain(t, 10*time.Second, func() bool { return m.proxyTokens() == 0 },
		func() string { return fmt.Sprintf("%d proxy tokens left after the proxies stopped", m.proxyTokens()) })
}

// A task whose role is tagged rogue asks for orders in the mesh (SERVICE_NAME=orders,
// SERVICE_CONNECT=true; no policy, so the daemon registers it). Its proxy's login is bound to rogue:
// sidecar-for refuses to run a proxy for orders and logs out, the token gets no certificate for
// orders, and over many calls the client reaches only the real orders.
func TestMeshACLRogueRoleGetsNoCertificate(t *testing.T) {
	m := startSecuredMesh(t, meshRoles)
	orders, _ := m.task("orders", "AKIAORDERS", map[string]string{"SERVICE_NAME": "orders", "SERVICE_CONNECT": "true"})
	rogue, rogueProxy := m.task("rogue", "AKIAROGUE", map[string]string{"SERVICE_NAME": "orders", "SERVICE_CONNECT": "true"})
	client, _ := m.task("client", "AKIACLIENT", map[string]string{"SERVICE_NAME": "client", "SERVICE_CONNECT": "true",
		"SERVICE_CONNECT_UPSTREAMS": "orders:9191"})
	if _, err := m.a.Connect().IntentionUpsert(&api.Intention{SourceName: "client", DestinationName: "orders", Action: api.IntentionActionAllow}, nil); err != nil {
		t.Fatal(err)
	}

	// The rogue's proxy exits with the reason, and leaves no token behind.
	var in container.InspectResponse
	testenv.EventuallyExplain(t, 30*time.Second, func() bool { in = testenv.Inspect(t, m.docker, rogueProxy); return !in.State.Running },
		func() string { return "the rogue's proxy still runs: " + m.logs(t.Context(), rogueProxy) })
	logs := m.logs(t.Context(), rogueProxy)
	if in.State.ExitCode == 0 || !strings.Contains(logs, `logs in as service rogue, not "orders"`) {
		t.Errorf("the rogue's proxy exited %d: %s", in.State.ExitCode, logs)
	}
	testenv.EventuallyExplain(t, 30*time.Second, func() bool { return passing(t, m.a, "client-sidecar-proxy") == 1 && m.proxyTokens() == 2 },
		func() string { return fmt.Sprintf("%d proxy tokens (want orders' and client's)", m.proxyTokens()) })

	// The rogue's role cannot get orders' certificate from the agent, however it asks.
	login := consul.IAMLogin{Method: meshAuthMethod, ServerID: meshServerID, Entity: true, Region: "us-east-1",
		Creds: credentials.NewStaticCredentialsProvider("AKIAROGUE", "secret-AKIAROGUE", "session-AKIAROGUE")}
	t.Setenv("AWS_ENDPOINT_URL_STS", m.iam.URL)
	t.Setenv("AWS_ENDPOINT_URL_IAM", m.iam.URL)
	plain, err := api.NewClient(&api.Config{Address: m.consul.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := login.Login(t.Context(), plain)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = consul.Logout(context.Background(), plain, tok.SecretID) }()
	if len(tok.ServiceIdentities) != 1 || tok.ServiceIdentities[0].ServiceName != "rogue" {
		t.Errorf("the rogue's login is bound to %+v", tok.ServiceIdentities)
	}
	as, err := api.NewClient(&api.Config{Address: m.consul.Addr(), Token: tok.SecretID})
	if err != nil {
		t.Fatal(err)
	}
	if leaf, _, err := as.Agent().ConnectCALeaf("orders", nil); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Errorf("the rogue's token got orders' certificate: %v, %v", leaf != nil, err)
	}

	// The client only ever reaches the real orders.
	call := m.caller(client)
	testenv.EventuallyExplain(t, 30*time.Second, func() bool { code, body := call(); return code == 200 && body == orders[:12] },
		func() string { code, body := call(); return fmt.Sprintf("the call answered %d %q", code, body) })
	for i := range 30 {
		if code, body := call(); code != 200 || body != orders[:12] {
			t.Errorf("call %d answered %d %q (rogue is %.12s)", i, code, body, rogue)
		}
	}
}
