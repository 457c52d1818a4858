package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// The proxy gets the signals the container gets: one that asks for something (Envoy reopens its
// logs on SIGUSR1) leaves it running, one that stops it ends sidecar-for with the proxy's status,
// and the token is given back. Not parallel: the signals go to the test binary itself.
func TestSidecarForPassesSignalsToTheProxy(t *testing.T) {
	var logouts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/acl/logout" && r.Header.Get("X-Consul-Token") == "proxy-token" {
			logouts.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	plain, err := api.NewClient(&api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	p := &proxyLogin{plain: plain, token: &api.ACLToken{SecretID: "proxy-token"}, stderr: io.Discard}

	// The proxy notes each signal it gets; TERM ends it with 3.
	got := filepath.Join(t.TempDir(), "got")
	script := `trap 'echo HUP >> "$GOT"' HUP; trap 'echo USR1 >> "$GOT"' USR1; trap 'echo USR2 >> "$GOT"' USR2
trap 'echo TERM >> "$GOT"; exit 3' TERM
echo "ready $CONSUL_HTTP_TOKEN" >> "$GOT"
while kill -0 $PPID 2>/dev/null; do sleep 0.05; done # ends with the test, whatever happens`
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	status := make(chan int, 1)
	go func() {
		status <- p.run(sh, []string{"sh", "-c", script}, append(os.Environ(), "GOT="+got), time.Hour)
	}()
	lines := func() []string {
		b, _ := os.ReadFile(got)
		return strings.Fields(strings.ReplaceAll(string(b), "\n", " "))
	}
	testenv.Eventually(t, 10*time.Second, "the proxy never started", func() bool { return len(lines()) >= 2 })
	if l := lines(); l[1] != "proxy-token" {
		t.Fatalf("the proxy started with %q; want its own token in CONSUL_HTTP_TOKEN", l)
	}
	for _, s := range []struct {
		sig  syscall.Signal
		name string
	}{{syscall.SIGHUP, "HUP"}, {syscall.SIGUSR1, "USR1"}, {syscall.SIGUSR2, "USR2"}} {
		if err := syscall.Kill(os.Getpid(), s.sig); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, "the proxy never got SIG"+s.name, func() bool { return slices.Contains(lines(), s.name) })
	}
	select {
	case st := <-status:
		t.Fatalf("sidecar-for ended (%d) on a signal that only asks", st)
	default:
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-status:
		if st != 3 {
			t.Errorf("sidecar-for ended with %d; want the proxy's 3", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sidecar-for did not end after SIGTERM")
	}
	if l := lines(); l[len(l)-1] != "TERM" {
		t.Errorf("the proxy noted %q; want TERM last", l)
	}
	if n := logouts.Load(); n != 1 {
		t.Errorf("%d logouts with the proxy's token; want 1", n)
	}
}
