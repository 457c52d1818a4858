package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// gliderlabs/registrator's command line, so that a team swaps the image and keeps its task definition:
// `registrator [flags] consul://host:port`. Its flags are accepted with their meaning; given the
// registry URI ("gliderlabs mode"), its defaults apply where a flag was not given.

// seconds is -resync: gliderlabs takes integer seconds, this daemon a Go duration; both work.
type seconds struct{ d *time.Duration }

func (s seconds) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s seconds) Set(v string) error {
	if n, err := strconv.Atoi(v); err == nil {
		*s.d = time.Duration(n) * time.Second
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("not a duration or a number of seconds: %q", v)
	}
	*s.d = d
	return nil
}

// gliderlabsFlags are gliderlabs's flags that this daemon has no flag of its own for.
type gliderlabsFlags struct {
	explicit      bool
	cleanup       bool
	deregister    string
	useIPLabel    string
	retryAttempts int
	retryInterval int
	ttl           int
	ttlRefresh    int
}

func (g *gliderlabsFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&g.explicit, "explicit", false, "gliderlabs: register only containers with SERVICE_NAME or SERVICE_<port>_NAME (this daemon's -opt-in)")
	fs.BoolVar(&g.cleanup, "cleanup", false, "gliderlabs: remove services gliderlabs left on this host (<hostname>:<container>:<port>) that no running container accounts for")
	fs.StringVar(&g.deregister, "deregister", "always", "gliderlabs: always, or on-success: a container that exits with a non-zero code (not a signal's) stays registered, its mirrored health critical")
	fs.StringVar(&g.useIPLabel, "useIpFromLabel", "", "gliderlabs: the container label whose value (an IP, or a CIDR) is the service address")
	fs.IntVar(&g.retryAttempts, "retry-attempts", 0, "gliderlabs: attempts to reach Consul at start; accepted, but this daemon retries for ever and never exits on an outage")
	fs.IntVar(&g.retryInterval, "retry-interval", 2000, "gliderlabs: ms between those attempts; accepted, see -retry-attempts")
	fs.IntVar(&g.ttl, "ttl", 0, "gliderlabs: service TTL; no effect with Consul (as in gliderlabs)")
	fs.IntVar(&g.ttlRefresh, "ttl-refresh", 0, "gliderlabs: TTL refresh; no effect with Consul (as in gliderlabs)")
}

// check refuses values gliderlabs refuses too.
func (g *gliderlabsFlags) check() error {
	if g.deregister != "always" && g.deregister != "on-success" {
		return fmt.Errorf("-deregister must be always or on-success, not %q", g.deregister)
	}
	return nil
}

// registryAddr turns gliderlabs's registry URI into a Consul address for this daemon.
func registryAddr(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("registry URI %q: %w", uri, err)
	}
	switch u.Scheme {
	case "consul":
		return u.Host, nil // empty: CONSUL_HTTP_ADDR, else the default
	case "consul-tls":
		host := u.Host
		if host == "" {
			host = "127.0.0.1:8501"
		}
		return "https://" + host, nil
	case "consul-unix":
		if u.Path == "" {
			return "", fmt.Errorf("registry URI %q: consul-unix:// needs a socket path", uri)
		}
		return "unix://" + u.Path, nil
	}
	return "", fmt.Errorf("registry URI %q: only consul://, consul-tls:// and consul-unix:// are supported", uri)
}

// dockerSocketFallback is gliderlabs's socket: its docs mount the host's at /tmp/docker.sock. It is
// used when DOCKER_HOST is unset and the usual socket does not exist.
func dockerSocketFallback(getenv func(string) string) string {
	if getenv("DOCKER_HOST") != "" {
		return ""
	}
	if _, err := os.Stat("/var/run/docker.sock"); err == nil {
		return ""
	}
	if st, err := os.Stat("/tmp/docker.sock"); err == nil && st.Mode()&os.ModeSocket != 0 {
		return "unix:///tmp/docker.sock"
	}
	return ""
}

// applyGliderlabs reads the registry URI and gliderlabs's flags into c. set names the flags given.
func (c *config) applyGliderlabs(args []string, g *gliderlabsFlags, set map[string]bool) error {
	if err := g.check(); err != nil {
		return err
	}
	if set["explicit"] {
		c.core.OptIn = g.explicit
	}
	c.core.KeepFailed = g.deregister == "on-success"
	c.core.IPFromLabel = g.useIPLabel
	if g.cleanup {
		c.core.Migrate.Cleanup = true
	}
	switch len(args) {
	case 0:
		return nil
	case 1:
	default:
		return fmt.Errorf("unexpected argument %q", args[1])
	}
	addr, err := registryAddr(args[0])
	if err != nil {
		return err
	}
	c.core.Gliderlabs = true
	// gliderlabs writes over whatever holds an ID it registers; its drop-in writes over what gliderlabs
	// left under its default IDs, and only that (registrator.Migration).
	c.core.Migrate.Adopt = true
	if !set["consul"] {
		c.consul = addr
	}
	// gliderlabs's default registers every published port; -explicit (or -opt-in) narrows it.
	if !set["opt-in"] && !set["explicit"] {
		c.core.OptIn = false
	}
	return nil
}

// isURI tells the registry URI from a stray argument.
func isURI(s string) bool { return strings.Contains(s, "://") }
