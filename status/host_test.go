package status

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/internal/promtext"
)

// DNS rebinding: a request naming a host the attacker controls is refused on every endpoint, saying
// why and what to use; loopback names, IP literals and the -listen host are answered.
func TestHostCheck(t *testing.T) {
	snap := fixture()
	snap.Daemon.Ready = true
	h := Handler(fixed{snap}, promtext.NewRegistry(), "status.ops.internal")
	paths := []string{"/", "/v1/status", "/v1/containers", "/v1/containers/billing", "/healthz", "/readyz", "/metrics", "/nonexistent"}
	for _, host := range []string{"evil.example", "evil.example:9555", "127.0.0.1.evil.example", "localhost.evil.example:9555",
		"notlocalhost", "status.ops.internal.evil.example", "[::1].evil.example", "0x7f000001"} {
		for _, path := range paths {
			code, body := getHost(t, h, path, host)
			if code != http.StatusMisdirectedRequest || !strings.Contains(string(body), "DNS rebinding") ||
				!strings.Contains(string(body), "http://127.0.0.1:<port>/") {
				t.Errorf("Host %q %s: %d %q, want 421 saying why", host, path, code, body)
			}
			if strings.Contains(string(body), "billing") {
				t.Errorf("Host %q %s: the refusal shows the snapshot", host, path)
			}
		}
	}
	for _, host := range []string{"127.0.0.1:9555", "127.0.0.1", "127.8.9.10:1", "localhost:9555", "LOCALHOST", "localhost.",
		"status.localhost:9555", "[::1]:9555", "[::1]", "10.0.1.23:9555", "[2001:db8::1]:9555", "[fe80::1%25eth0]:9555",
		"status.ops.internal:9555", "Status.Ops.Internal.", ""} {
		for _, path := range paths[:len(paths)-1] {
			if code, body := getHost(t, h, path, host); code != http.StatusOK {
				t.Errorf("Host %q %s: %d %q, want 200", host, path, code, body)
			}
		}
	}
	// Without a -listen name only loopback names and IP literals are answered.
	if code, _ := getHost(t, Handler(fixed{snap}, nil, ""), "/healthz", "status.ops.internal"); code != http.StatusMisdirectedRequest {
		t.Errorf("a name with no -listen host: %d, want 421", code)
	}
}
