package consul

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/registrator"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// Every call the core makes tells it apart whether the agent answered and refused (registrator.ErrRefused,
// with Consul's own text, which names the permission a token lacks) or did not answer at all. A
// deregistration of a service already gone is no error. (What a real agent with ACLs answers is proven
// in TestACLTokenFileMinimalPolicyAndRefusals.)
func TestRefusalsAreTheCoresErrorKind(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/agent/service/deregister/gone") {
			http.Error(w, "Unknown service ID", http.StatusNotFound)
			return
		}
		http.Error(w, "Permission denied: token lacks permission", http.StatusForbidden)
	}))
	defer refusing.Close()
	silent := httptest.NewServer(http.NotFoundHandler())
	silent.Close() // connection refused

	calls := map[string]func(context.Context, *Agent) error{
		"NodeName": func(ctx context.Context, a *Agent) error { _, err := a.NodeName(ctx); return err },
		"Services": func(ctx context.Context, a *Agent) error { _, err := a.Services(ctx); return err },
		"Register": func(ctx context.Context, a *Agent) error {
			return a.Register(ctx, desired.Service{ID: "web-1", Name: "web", Port: 80}, false)
		},
		"Deregister": func(ctx context.Context, a *Agent) error { return a.Deregister(ctx, "web-1") },
		"UpdateTTL": func(ctx context.Context, a *Agent) error {
			return a.UpdateTTL(ctx, "check-1", health.State{Status: health.Passing})
		},
		"Maintain": func(ctx context.Context, a *Agent) error { return a.Maintain(ctx, "web-1", "note") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			a, err := NewAgent(refusing.URL)
			if err != nil {
				t.Fatal(err)
			}
			err = call(t.Context(), a)
			if !errors.Is(err, registrator.ErrRefused) {
				t.Errorf("a refusal is not ErrRefused: %v", err)
			}
			var se api.StatusError
			if !errors.As(err, &se) || se.Code != http.StatusForbidden {
				t.Errorf("Consul's error is not kept: %v", err)
			}
			if err != nil && (!strings.Contains(err.Error(), "Permission denied") || strings.Contains(err.Error(), registrator.ErrRefused.Error())) {
				t.Errorf("the text is not Consul's own: %v", err)
			}

			a, err = NewAgent(silent.URL)
			if err != nil {
				t.Fatal(err)
			}
			if err := call(t.Context(), a); err == nil || errors.Is(err, registrator.ErrRefused) {
				t.Errorf("an agent that does not answer: %v; want an error that is not ErrRefused", err)
			}
		})
	}

	a, err := NewAgent(refusing.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Deregister(t.Context(), "gone"); err != nil {
		t.Errorf("deregistering a service the agent does not hold: %v", err)
	}
}
