package registrator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	consulagent "github.com/ecs-registrator/ecs-registrator/registrator/consul"
)

// An agent that serves HTTPS and requires client certificates: with CONSUL_CACERT and the client's
// certificate and key the daemon registers; without the certificate, or trusting another CA, it never
// gets an answer and says why.
func TestTLSWithClientCertificates(t *testing.T) {
	d := testenv.Docker(t)
	consul := testenv.StartConsulTLS(t)
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	t.Setenv("CONSUL_CACERT", consul.TLS.CA)
	t.Setenv("CONSUL_CLIENT_CERT", consul.TLS.ClientCert)
	t.Setenv("CONSUL_CLIENT_KEY", consul.TLS.ClientKey)

	for name, env := range map[string][2]string{
		"no client certificate": {"CONSUL_CLIENT_CERT", ""},
		"another CA":            {"CONSUL_CACERT", consul.TLS.Other},
		"another server name":   {"CONSUL_TLS_SERVER_NAME", "consul.elsewhere.example"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(env[0], env[1])
			if env[0] == "CONSUL_CLIENT_CERT" {
				t.Setenv("CONSUL_CLIENT_KEY", "")
			}
			a, err := consulagent.NewAgent(consul.ClientAddr())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.NodeName(t.Context()); err == nil {
				t.Fatal("the agent answered")
			} else if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("the error does not say what is wrong: %v", err)
			} else {
				t.Logf("%s: %v", name, err)
			}
		})
	}

	e := run(t, d, consul)
	e.waitReady(t)
	id := testenv.Start(t, d, testenv.Workload{Name: unique(t, "tls"), TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_NAME": "tls", "SERVICE_CHECK_TTL": "30s"}})
	e.waitServices(t, id, 1, 10*time.Second)
}
