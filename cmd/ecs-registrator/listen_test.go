package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/status"
)

type readySource struct{}

func (readySource) Snapshot(context.Context) status.Snapshot { return status.Snapshot{} }
func (readySource) Ready() bool                              { return true }

// The status server on a Unix socket: made 0660 in a directory it creates, a stale socket replaced,
// one in use or a file that is no socket left alone, the healthcheck and status subcommands reach it,
// and closing the server removes it.
func TestListenUnixSocket(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "status.sock")
	at, err := parseListen("unix://" + path)
	if err != nil {
		t.Fatal(err)
	}
	// A daemon that was killed left its socket behind.
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	ln, err := at.listen()
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != socketMode {
		t.Fatalf("socket %v, %v; want a socket with mode %o", fi.Mode(), err, socketMode)
	}
	if _, err := at.listen(); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("a second listen on a socket in use: %v", err)
	}
	srv := &http.Server{Handler: status.Handler(readySource{}, nil, at.host())}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()

	client, base := at.client(5 * time.Second)
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz over the socket: %s", resp.Status)
	}
	var out, errOut bytes.Buffer
	for _, args := range [][]string{{"healthcheck"}, {"healthcheck", "-ready"}, {"status", "-json"}} {
		out.Reset()
		errOut.Reset()
		if code := subcommand(args[0], append(args[1:], "-addr", "unix://"+path), &out, &errOut); code != 0 {
			t.Errorf("%v over the socket: exit %d, %s", args, code, errOut.String())
		}
	}

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after the server closed: %v", err)
	}
	if code := subcommand("healthcheck", []string{"-addr", "unix://" + path}, &out, &errOut); code == 0 {
		t.Error("healthcheck with no server on the socket exited 0")
	}

	if err := os.WriteFile(path, []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := at.listen(); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen over a plain file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "not a socket" {
		t.Error("the plain file was removed")
	}
}

// The subcommands ask a server listening on every address at loopback, which the Host check answers.
func TestListenClientAddress(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"127.0.0.1:9555": "http://127.0.0.1:9555", ":9555": "http://127.0.0.1:9555",
		"0.0.0.0:9555": "http://127.0.0.1:9555", "[::]:9555": "http://[::1]:9555", "http://localhost:9555": "http://localhost:9555",
		"tcp://10.0.1.23:9555": "http://10.0.1.23:9555", "unix:///run/x.sock": "http://localhost"} {
		at, err := parseListen(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if _, base := at.client(0); base != want {
			t.Errorf("%s: base %s, want %s", in, base, want)
		}
	}
}
