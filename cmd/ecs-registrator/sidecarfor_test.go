package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// sidecar-for finds the application's service by its task (from task metadata, in an awsvpc task)
// or by its container ID (a shared network namespace outside ECS), among the agent's sidecars.
func TestSidecarForFindsTheApplicationsService(t *testing.T) {
	t.Parallel()
	consul := testenv.StartConsul(t)
	a := consul.API()
	const arnA, arnB = "arn:aws:ecs:us-east-1:111122223333:task/prod/aaaa", "arn:aws:ecs:us-east-1:111122223333:task/prod/bbbb"
	register := func(id, name, arn, containerID, ecsContainer string) {
		t.Helper()
		err := a.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: name, Port: 8080,
			Meta: map[string]string{desired.MetaExternalSource: desired.ExternalSource, desired.MetaECSTaskARN: arn,
				desired.MetaContainerID: containerID, desired.MetaECSContainer: ecsContainer},
			Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{Port: 21000}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	register("orders-1", "orders", arnA, strings.Repeat("a", 64), "app")
	register("payments-1", "payments", arnB, strings.Repeat("b", 64), "app")
	register("payments-admin", "payments-admin", arnB, strings.Repeat("c", 64), "admin")
	// Another tool's proxy is never picked.
	if err := a.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "other-proxy", Name: "other-proxy", Kind: api.ServiceKindConnectProxy,
		Port: 21001, Proxy: &api.AgentServiceConnectProxyConfig{DestinationServiceName: "orders", DestinationServiceID: "orders-1"}}); err != nil {
		t.Fatal(err)
	}

	tmds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v4/uuid/task" {
			w.WriteHeader(404)
			return
		}
		fmt.Fprintf(w, `{"Cluster":"prod","TaskARN":%q,"Family":"orders","Revision":"3","KnownStatus":"RUNNING",`+
			`"Containers":[{"Name":"app","Labels":{"SERVICE_8080_connect":"true"}},{"Name":"envoy","Labels":{"SERVICE_IGNORE":"true"}}]}`, arnA)
	}))
	t.Cleanup(tmds.Close)
	arn, meshed, err := taskARNFrom(t.Context(), tmds.URL+"/v4/uuid")
	if err != nil || arn != arnA || meshed != 1 {
		t.Fatalf("task ARN from task metadata: %q (%d meshed containers), %v", arn, meshed, err)
	}
	for _, tc := range []struct {
		m       sidecarMatch
		want    string
		wantErr string
	}{
		{m: sidecarMatch{taskARN: arn}, want: "orders-1"},
		{m: sidecarMatch{containerID: strings.Repeat("b", 12)}, want: "payments-1"},
		{m: sidecarMatch{taskARN: arnB}, wantErr: "2 services are in the mesh"},
		{m: sidecarMatch{taskARN: arnB, container: "admin"}, want: "payments-admin"},
		{m: sidecarMatch{taskARN: arnB, service: "payments"}, want: "payments-1"},
		{m: sidecarMatch{containerID: strings.Repeat("d", 12)}, wantErr: "gave up waiting"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		id, err := tc.m.wait(ctx, a)
		cancel()
		if id != tc.want || (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: %q, %v; want %q %q", tc.m, id, err, tc.want, tc.wantErr)
		}
	}
}
