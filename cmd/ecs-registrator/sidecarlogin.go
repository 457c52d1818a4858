package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/registrator/consul"
)

// proxyLogin is a proxy's own Consul identity: sidecar-for logs in through an aws-iam auth method
// with the task's IAM role, and Consul's binding rule (type service, its name from the role's tag)
// makes the token good for exactly that service and its sidecar. The proxy gets its certificate with
// that token, so a task whose role is another service's gets none, whatever its labels claim.
type proxyLogin struct {
	iam     consul.IAMLogin
	cfg     api.Config  // the agent's address and TLS, without a token
	plain   *api.Client // no token: login and logout authenticate themselves
	token   *api.ACLToken
	renewAt time.Time // zero: until Consul no longer knows it
	stderr  io.Writer
}

// newProxyLogin logs in. Only the task's own credentials will do (ECS's container credentials
// endpoint): never the instance role's, which every task on the host would share.
func newProxyLogin(ctx context.Context, cfg api.Config, method, serverID string, stderr io.Writer) (*proxyLogin, error) {
	if os.Getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") == "" && os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI") == "" {
		return nil, errors.New("no task role credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not set: give the task definition a taskRoleArn); " +
			"a proxy never logs in with the instance's role, which every task on the host shares")
	}
	// Keys in the environment would come first in the credential chain: only the task's role will do.
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		if os.Getenv(k) != "" {
			fmt.Fprintf(stderr, "ecs-registrator sidecar-for: %s ignored: the proxy logs in with the task's role\n", k)
			_ = os.Unsetenv(k)
		}
	}
	cfg.Token, cfg.TokenFile = "", ""
	plain, err := api.NewClient(&cfg)
	if err != nil {
		return nil, err
	}
	p := &proxyLogin{iam: consul.IAMLogin{Method: method, ServerID: serverID, Creds: ecsmeta.Credentials(), Entity: true}, cfg: cfg, plain: plain, stderr: stderr}
	tok, err := p.iam.Login(ctx, plain)
	if err != nil {
		return nil, err
	}
	p.take(tok)
	return p, nil
}

// take makes tok the proxy's token, and works out when it is due for renewal by its own lifetime
// (Consul's clock on both ends), on this host's clock.
func (p *proxyLogin) take(tok *api.ACLToken) {
	p.token, p.renewAt = tok, time.Time{}
	if e := tok.ExpirationTime; e != nil && !tok.CreateTime.IsZero() && e.After(tok.CreateTime) {
		p.renewAt = time.Now().Add(2 * e.Sub(tok.CreateTime) / 3)
	}
}

// client is a client that carries the token.
func (p *proxyLogin) client() (*api.Client, error) {
	cfg := p.cfg
	cfg.Token = p.token.SecretID
	return api.NewClient(&cfg)
}

// services are the services the token is bound to.
func (p *proxyLogin) services() []string { return serviceNames(p.token) }

func serviceNames(tok *api.ACLToken) []string {
	var out []string
	for _, si := range tok.ServiceIdentities {
		out = append(out, si.ServiceName)
	}
	slices.Sort(out)
	return out
}

// check refuses to run a proxy for a service the token is not bound to: Consul would give it no
// certificate, and the proxy would retry for ever without saying why.
func (p *proxyLogin) check(ctx context.Context, c *api.Client, serviceID string) error {
	s, _, err := c.Agent().Service(serviceID, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("read service %s: %w", serviceID, err)
	}
	names := p.services()
	if len(names) == 0 || slices.Contains(names, s.Service) {
		return nil
	}
	return fmt.Errorf("this task's IAM role logs in as service %s, not %q: Consul gives its proxy no certificate for %q. "+
		"Tag the task role with the service it runs (consul.hashicorp.com.service-name=%s), or give the container the service its role is for",
		strings.Join(names, ", "), s.Service, s.Service, s.Service)
}

// logout gives the token back; it is gone from Consul once the proxy is.
func (p *proxyLogin) logout() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := consul.Logout(ctx, p.plain, p.token.SecretID); err != nil {
		fmt.Fprintln(p.stderr, "ecs-registrator sidecar-for: logout:", err)
	}
}

// due reports whether the token must be replaced: Consul no longer knows it (deleted, expired), or a
// third of its lifetime is left.
func (p *proxyLogin) due(ctx context.Context) bool {
	if !p.renewAt.IsZero() && time.Now().After(p.renewAt) {
		return true
	}
	_, _, err := p.plain.ACL().TokenReadSelf((&api.QueryOptions{Token: p.token.SecretID, AllowStale: true}).WithContext(ctx))
	var se api.StatusError
	return errors.As(err, &se) && (se.Code == 403 || se.Code == 401) && strings.Contains(se.Body, "ACL not found")
}

// The signals the container gets that the proxy gets too: those that stop it, after which it is not
// restarted with a new token, and those it takes as a request (Envoy reopens its logs on SIGUSR1).
var (
	stopSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT}
	passSignals = []os.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2}
)

// run runs the proxy as a child with the token (CONSUL_HTTP_TOKEN, which `consul connect proxy` and
// `consul connect envoy` read), passes it the signals the container gets, and logs out when it exits,
// with its exit status. A token that must be replaced is replaced by a new login, and the proxy is
// started again with it: proxies read their token once. An auth method without MaxTokenTTL (as
// consul-ecs documents it) never needs that.
func (p *proxyLogin) run(path string, argv, env []string, every time.Duration) int {
	defer p.logout()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, append(slices.Clone(stopSignals), passSignals...)...)
	defer signal.Stop(sigs)
	base := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, "CONSUL_HTTP_TOKEN=") || strings.HasPrefix(kv, "CONSUL_HTTP_TOKEN_FILE=")
	})
	tick := time.NewTicker(max(every, time.Second))
	defer tick.Stop()
	stopping := false // the container was told to stop: no restart, whatever is under way
	for {
		cmd := exec.Command(path, argv[1:]...)
		cmd.Args, cmd.Env = argv, append(slices.Clone(base), "CONSUL_HTTP_TOKEN="+p.token.SecretID)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(p.stderr, "ecs-registrator sidecar-for: start the proxy:", err)
			return 1
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		restart := false
	wait:
		for {
			select {
			case s := <-sigs:
				stopping = stopping || slices.Contains(stopSignals, s)
				_ = cmd.Process.Signal(s)
			case <-tick.C:
				if stopping || restart {
					break
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if p.due(ctx) {
					if tok, err := p.iam.Login(ctx, p.plain); err != nil {
						fmt.Fprintln(p.stderr, "ecs-registrator sidecar-for: login again:", err)
					} else if was := p.services(); !slices.Equal(was, serviceNames(tok)) {
						// The role was tagged for another service: this proxy's service is not its own any more.
						fmt.Fprintf(p.stderr, "ecs-registrator sidecar-for: the task's role now logs in as service %v, not %v: stopping the proxy\n", serviceNames(tok), was)
						_ = consul.Logout(ctx, p.plain, tok.SecretID)
						stopping = true
						_ = cmd.Process.Signal(syscall.SIGTERM)
					} else {
						fmt.Fprintln(p.stderr, "ecs-registrator sidecar-for: the proxy's token was replaced by a new login; restarting the proxy with it")
						old := p.token
						p.take(tok)
						restart = true
						_ = consul.Logout(ctx, p.plain, old.SecretID)
						_ = cmd.Process.Signal(syscall.SIGTERM)
					}
				}
				cancel()
			case <-done:
				break wait
			}
		}
		if !restart || stopping {
			return exitStatus(cmd.ProcessState)
		}
	}
}

// exitStatus is a child's exit code as a shell reports it: 128+N for a signal.
func exitStatus(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
