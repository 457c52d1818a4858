package testenv

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// ReadOnlyDocker is a proxy in front of a Docker socket that lets only reads through: GET and HEAD
// (the event stream is a GET). Anything else is answered 403 and counted.
type ReadOnlyDocker struct {
	Host   string // unix:// address of the proxy's socket
	Denied atomic.Int64
	Passed atomic.Int64
}

// StartReadOnlyDocker proxies the Docker socket at upstream (a unix:// address) until the test ends.
func StartReadOnlyDocker(t testing.TB, upstream string) *ReadOnlyDocker {
	t.Helper()
	sock := strings.TrimPrefix(upstream, "unix://")
	dir, err := os.MkdirTemp("", "ecsr-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	p := &ReadOnlyDocker{Host: "unix://" + path}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
		FlushInterval: -1, // the event stream must flow as it comes
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			p.Denied.Add(1)
			http.Error(w, `{"message":"read-only proxy: `+r.Method+` refused"}`, http.StatusForbidden)
			return
		}
		p.Passed.Add(1)
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}
