package consul

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/registrator"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// seen is one request as the agent received it.
type seen struct {
	method, path, query, token, host string
	body                             map[string]any
}

// recordingAgent answers every request with 200 and keeps what it got.
type recordingAgent struct {
	mu   sync.Mutex
	reqs []seen
}

func (ra *recordingAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s := seen{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, token: r.Header.Get("X-Consul-Token"), host: r.Host}
	_ = json.Unmarshal(b, &s.body)
	ra.mu.Lock()
	ra.reqs = append(ra.reqs, s)
	ra.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/v1/agent/checks") {
		_, _ = io.WriteString(w, "{}")
	}
}

func (ra *recordingAgent) last(t *testing.T, path string) seen {
	t.Helper()
	ra.mu.Lock()
	defer ra.mu.Unlock()
	for i := len(ra.reqs) - 1; i >= 0; i-- {
		if ra.reqs[i].path == path {
			return ra.reqs[i]
		}
	}
	t.Fatalf("no request to %s; got %+v", path, ra.reqs)
	return seen{}
}

var checked = desired.Service{ID: "n:web:8080", Name: "web", Address: "10.0.0.5", Port: 32768, Meta: map[string]string{"k": "v"},
	Checks: []health.Check{
		{ID: "service:n:web:8080:http", Kind: health.KindHTTP, HTTP: "http://10.0.0.5:32768/h", Header: map[string][]string{"X-Api-Key": {"k"}},
			Interval: time.Second, DisableRedirects: true},
		{ID: "service:n:web:8080:https", Kind: health.KindHTTPS, HTTP: "https://10.0.0.5:32768/h", Interval: time.Second, DisableRedirects: true},
		{ID: "service:n:web:8080:tcp", Kind: health.KindTCP, TCP: "10.0.0.5:32768", Interval: time.Second},
		{ID: "service:n:web:8080", Kind: health.KindTTL, TTL: 30 * time.Second},
	},
	Connect: &desired.Connect{Address: "10.0.0.5", Port: 21000, BindPort: 21000, LocalPort: 8080}}

// The registration carries DisableRedirects on exactly the checks that have it, under the JSON name
// Consul 1.14's agent decodes, replaces the service's checks, and goes out as consul/api's own
// requests do: with the token. (That the real agent then stops following redirects is
// TestCheckRedirectIsNotFollowed.)
func TestRegisterSendsDisableRedirects(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "env-token")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	ra := &recordingAgent{}
	srv := httptest.NewServer(ra)
	defer srv.Close()
	a, err := NewAgent(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Register(t.Context(), checked, false); err != nil {
		t.Fatal(err)
	}
	got := ra.last(t, registerPath)
	if got.method != http.MethodPut || got.query != "replace-existing-checks=true" || got.token != "env-token" {
		t.Errorf("request %s %s?%s token %q; want PUT with replace-existing-checks=true and the token", got.method, got.path, got.query, got.token)
	}
	if got.body["ID"] != checked.ID || got.body["Name"] != "web" || got.body["Port"] != float64(32768) ||
		got.body["Meta"].(map[string]any)["k"] != "v" || got.body["Connect"] == nil {
		t.Errorf("service fields lost: %v", got.body)
	}
	checks, _ := got.body["Checks"].([]any)
	if len(checks) != len(checked.Checks) {
		t.Fatalf("checks %v", got.body["Checks"])
	}
	for i, raw := range checks {
		c := raw.(map[string]any)
		want := checked.Checks[i].DisableRedirects
		if v, ok := c["DisableRedirects"]; ok != want || want && v != true {
			t.Errorf("check %v: DisableRedirects %v (present %v), want %v", c["CheckID"], v, ok, want)
		}
		if c["CheckID"] != checked.Checks[i].ID || c["Interval"] == nil && c["TTL"] == nil {
			t.Errorf("check fields lost: %v", c)
		}
		if _, snake := c["disable_redirects"]; snake {
			t.Errorf("check %v has disable_redirects, which the service endpoint refuses as an unknown field", c["CheckID"])
		}
	}
	if h := checks[0].(map[string]any)["Header"].(map[string]any)["X-Api-Key"]; h == nil {
		t.Errorf("header lost: %v", checks[0])
	}

	// Other requests are as consul/api makes them: nothing added.
	if err := a.Deregister(t.Context(), checked.ID); err != nil {
		t.Fatal(err)
	}
	if got := ra.last(t, "/v1/agent/service/deregister/"+checked.ID); got.query != "" || got.token != "env-token" {
		t.Errorf("deregister query %q token %q", got.query, got.token)
	}
}

// Over a unix socket (consul-unix://, CONSUL_HTTP_ADDR=unix://) the register query and a rotated
// token file work as over TCP: the daemon's own client dials the socket, where consul/api would have
// replaced it with one of its own.
func TestRegisterOverUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "ecsr-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "consul.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ra := &recordingAgent{}
	srv := &http.Server{Handler: ra}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", tokenFile)
	a, err := NewAgent("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Register(t.Context(), checked, false); err != nil {
		t.Fatal(err)
	}
	got := ra.last(t, registerPath)
	if got.query != "replace-existing-checks=true" || got.token != "first" {
		t.Errorf("over the socket: query %q token %q", got.query, got.token)
	}
	// A rewritten file is read again (a different size: the file is compared by size and mtime).
	if err := os.WriteFile(tokenFile, []byte("second-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Register(t.Context(), checked, false); err != nil {
		t.Fatal(err)
	}
	if got := ra.last(t, registerPath); got.token != "second-token" {
		t.Errorf("after the token file changed the socket client sent %q", got.token)
	}
}

// A refused registration is still the core's error kind, with Consul's text.
func TestRegisterRefusal(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Invalid check: Interval must be > 0", http.StatusBadRequest)
	}))
	defer srv.Close()
	a, err := NewAgent(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Register(t.Context(), checked, false)
	if !errors.Is(err, registrator.ErrRefused) || !strings.Contains(err.Error(), "Interval must be > 0") || !strings.Contains(err.Error(), "400") {
		t.Errorf("err = %v; want ErrRefused with the agent's status and text", err)
	}
}
