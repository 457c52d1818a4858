package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// listenAddr is where the status server listens (-listen) and where the subcommands reach it (-addr),
// in Docker's address forms: host:port or tcp://host:port, or unix:///absolute/path for a Unix socket.
type listenAddr struct {
	network string // "tcp" or "unix"
	address string // host:port, or the socket's path
}

// socketMode is the status socket's permissions: the daemon's user and group. Reaching it takes a
// member of the group (or root); nothing reaches it through a port-forward or a browser.
const socketMode = 0o660

func parseListen(s string) (listenAddr, error) {
	switch {
	case strings.HasPrefix(s, "unix://"):
		p := strings.TrimPrefix(s, "unix://")
		if !filepath.IsAbs(p) {
			return listenAddr{}, fmt.Errorf("%q: a Unix socket is unix:// and an absolute path, e.g. unix:///run/ecs-registrator/status.sock", s)
		}
		return listenAddr{"unix", filepath.Clean(p)}, nil
	case strings.Contains(s, "://") && !strings.HasPrefix(s, "tcp://") && !strings.HasPrefix(s, "http://"):
		return listenAddr{}, fmt.Errorf("%q: want host:port, tcp://host:port or unix:///path", s)
	}
	hp := strings.TrimPrefix(strings.TrimPrefix(s, "tcp://"), "http://")
	if _, _, err := net.SplitHostPort(hp); err != nil {
		return listenAddr{}, fmt.Errorf("%q: want host:port, tcp://host:port or unix:///path: %w", s, err)
	}
	return listenAddr{"tcp", hp}, nil
}

func (a listenAddr) String() string {
	if a.network == "unix" {
		return "unix://" + a.address
	}
	return a.address
}

// host is the name requests may carry in Host besides loopback names and IP addresses (status.Handler):
// the host of a TCP address, none for a socket.
func (a listenAddr) host() string {
	if a.network == "unix" {
		return ""
	}
	h, _, _ := net.SplitHostPort(a.address)
	return h
}

// listen opens the listener. A socket is made socketMode, in a directory created 0750 when missing;
// a stale socket that nothing answers on (a daemon that was killed) is removed first, while one that a
// running process serves, or a file that is not a socket, is an error. Closing the listener (the
// server's shutdown) removes the socket.
func (a listenAddr) listen() (net.Listener, error) {
	if a.network != "unix" {
		return net.Listen("tcp", a.address)
	}
	if err := os.MkdirAll(filepath.Dir(a.address), 0o750); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(a.address); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; not removing it", a.address)
		}
		if c, err := net.DialTimeout("unix", a.address, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another process serves this socket", a.address)
		}
		if err := os.Remove(a.address); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("removing the stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", a.address)
	if err != nil {
		return nil, err
	}
	// Made with the umask's permissions, then narrowed: for that instant the socket offers what the
	// default loopback listener offers every local user anyway, and a directory only the daemon's group
	// may enter (one created here is) closes even that.
	if err := os.Chmod(a.address, socketMode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// client is an HTTP client for the status server at a, and the URL its paths go after. Over a socket
// the requests name localhost, which the server's Host check answers.
func (a listenAddr) client(timeout time.Duration) (*http.Client, string) {
	if a.network != "unix" {
		host, port, _ := net.SplitHostPort(a.address)
		// A server on every address (":9555", "0.0.0.0:9555") is asked on loopback.
		if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
			host = "127.0.0.1"
			if ip.Is6() {
				host = "::1"
			}
		}
		return &http.Client{Timeout: timeout}, "http://" + net.JoinHostPort(host, port)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", a.address)
	}}
	return &http.Client{Timeout: timeout, Transport: tr}, "http://localhost"
}
