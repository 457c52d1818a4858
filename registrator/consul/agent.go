package consul

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/registrator"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// maintCheckPrefix is the ID prefix of the check Consul adds for a service in maintenance mode.
const maintCheckPrefix = "_service_maintenance:"

// Agent is the registrator.Agent backed by hashicorp/consul/api.
type Agent struct {
	c      *api.Client
	list   *lister     // reads the agent's services (Services)
	tokens tokenSource // nil for a fixed token (or none)
}

var _ registrator.Agent = (*Agent)(nil)

// Option changes how NewAgent connects.
type Option func(*options)

type options struct {
	iamMethod, iamServerID string
	creds                  aws.CredentialsProvider
}

// WithIAMLogin gets the token by logging in through Consul's aws-iam auth method with the daemon's
// AWS credentials (see iamLogin) instead of CONSUL_HTTP_TOKEN(_FILE). serverID is the method's
// ServerIDHeaderValue, "" when it has none.
func WithIAMLogin(method, serverID string, creds aws.CredentialsProvider) Option {
	return func(o *options) { o.iamMethod, o.iamServerID, o.creds = method, serverID, creds }
}

// NewAgent connects to the agent at addr (host:port or URL; empty keeps CONSUL_HTTP_ADDR or the
// default). The standard CONSUL_HTTP_TOKEN(_FILE), CONSUL_CACERT, CONSUL_CLIENT_CERT/KEY variables apply;
// CONSUL_HTTP_TOKEN_FILE is read again whenever it changes.
func NewAgent(addr string, opts ...Option) (*Agent, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	cfg := api.DefaultConfig()
	if addr != "" {
		scheme, rest, ok := strings.Cut(addr, "://")
		switch {
		case scheme == "unix":
			cfg.Address = addr // dialled below
		case ok:
			cfg.Scheme, cfg.Address = scheme, rest
		default:
			cfg.Address = addr
		}
	}
	// HTTP/1.1: over HTTP/2 a refused client certificate shows only as "http2: client conn could not
	// be established"; over HTTP/1.1 as "tls: certificate required", which tells an operator what to fix.
	cfg.Transport.ForceAttemptHTTP2 = false
	cfg.Transport.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	// A unix socket is dialled here: for a unix:// address consul/api would put an http.Client of its
	// own in place of the one made below, which carries the token file and the register query. (It
	// then sends Host: localhost, as consul/api does for a socket.)
	if sock, ok := strings.CutPrefix(cfg.Address, "unix://"); ok {
		cfg.Address = sock
		cfg.Transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	a := &Agent{}
	var tokens tokenSource
	switch {
	case o.iamMethod != "":
		plain := *cfg
		plain.Token, plain.TokenFile = "", ""
		hc, err := api.NewHttpClient(cfg.Transport, cfg.TLSConfig)
		if err != nil {
			return nil, fmt.Errorf("consul client: %w", err)
		}
		plain.HttpClient = hc
		lc, err := api.NewClient(&plain)
		if err != nil {
			return nil, fmt.Errorf("consul client: %w", err)
		}
		cfg.Token, cfg.TokenFile = "", ""
		tokens = &iamLogin{IAMLogin: IAMLogin{Method: o.iamMethod, ServerID: o.iamServerID, Creds: o.creds}, consul: lc}
	case cfg.TokenFile != "":
		f := &tokenFile{path: cfg.TokenFile}
		if f.read() == "" {
			return nil, fmt.Errorf("CONSUL_HTTP_TOKEN_FILE %s: no token in it", cfg.TokenFile)
		}
		tokens = f
	}
	hc, err := api.NewHttpClient(cfg.Transport, cfg.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	if tokens != nil {
		hc.Transport = tokenTransport{src: tokens, next: hc.Transport}
	}
	hc.Transport = queryTransport{next: hc.Transport}
	cfg.HttpClient = hc
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	a.c, a.list, a.tokens = c, newLister(cfg), tokens
	return a, nil
}

// TokenGeneration counts the changes of the daemon's token: each login (the first, a renewal, one
// after Consul said the token was gone) and each rotation of CONSUL_HTTP_TOKEN_FILE. The agent syncs
// a service to the catalog with the token it was registered with, so the registrator registers its
// services again when this changes (registrator.TokenRotator).
func (a *Agent) TokenGeneration() uint64 {
	if a.tokens == nil {
		return 0
	}
	return a.tokens.generation()
}

// Close ends the Agent. A token the daemon logged in for is not logged out: the agent syncs this
// host's services to the catalog with it, also after the daemon is gone (the daemon's own check
// turning critical, mirrored health expiring, Consul's own checks). It expires with the auth
// method's MaxTokenTTL; the next daemon registers every service again with its own token.
func (a *Agent) Close(context.Context) error { return nil }

func (a *Agent) NodeName(ctx context.Context) (string, error) {
	var self struct{ Config struct{ NodeName string } }
	if _, err := a.c.Raw().Query("/v1/agent/self", &self, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return "", refused(fmt.Errorf("read agent self: %w", err))
	}
	if self.Config.NodeName == "" {
		return "", errors.New("consul agent reported no node name")
	}
	return self.Config.NodeName, nil
}

// Client is the Consul API client, for what the status page shows beside the daemon's own state.
func (a *Agent) Client() *api.Client { return a.c }

func (a *Agent) Register(ctx context.Context, s desired.Service, replaces bool) error {
	reg := registration{AgentServiceRegistration: &api.AgentServiceRegistration{
		ID: s.ID, Name: s.Name, Tags: s.Tags, Address: s.Address, Port: s.Port, Meta: s.Meta,
	}}
	if c := s.Connect; c != nil {
		// The sidecar inherits the service's Meta (what the proxy finds its registration by) and
		// tags, and gets Consul's own checks: the public listener's TCP check and an alias of the
		// service's health.
		proxy := &api.AgentServiceConnectProxyConfig{
			LocalServiceAddress: "127.0.0.1", LocalServicePort: c.LocalPort,
			// Envoy listens where these say; Docker publishes the port under another number.
			Config: map[string]any{"bind_address": "0.0.0.0", "bind_port": c.BindPort},
		}
		for _, u := range c.Upstreams {
			proxy.Upstreams = append(proxy.Upstreams, api.Upstream{DestinationName: u.Name, LocalBindPort: u.LocalPort})
		}
		reg.Connect = &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Address: c.Address, Port: c.Port, Proxy: proxy,
		}}
	}
	var prev map[string]string
	if replaces && slices.ContainsFunc(s.Checks, func(c health.Check) bool { return c.InitialStatus == "" && c.Kind != health.KindMirror }) {
		prev = a.checkStatuses(ctx, s.ID)
	}
	for _, c := range s.Checks {
		status := c.InitialStatus
		switch {
		case c.Kind == health.KindMirror && s.Health != nil:
			status = s.Health.Status // registered as it is, not as it was at first
		case status == "" && prev != nil:
			status = cmp.Or(prev[c.ID], prev[consulType(c.Kind)])
		}
		reg.Checks = append(reg.Checks, registrationCheck{AgentServiceCheck: api.AgentServiceCheck{
			CheckID: c.ID, Name: c.Name, Notes: c.Notes, Status: status,
			HTTP: c.HTTP, Method: c.Method, Header: c.Header, TLSSkipVerify: c.TLSSkipVerify,
			TCP: c.TCP, GRPC: c.GRPC, GRPCUseTLS: c.GRPCUseTLS,
			Interval: duration(c.Interval), Timeout: duration(c.Timeout), TTL: duration(c.TTL),
			DeregisterCriticalServiceAfter: duration(c.DeregisterAfter),
		}, DisableRedirects: c.DisableRedirects})
	}
	// Replacing drops checks an earlier definition had and this one has not.
	if err := a.register(ctx, reg); err != nil {
		return refused(fmt.Errorf("register %s: %w", s.ID, err))
	}
	if s.Maintenance == "" {
		return nil
	}
	// Re-registering keeps an existing maintenance check; the planner lifts one by deregistering first.
	if err := a.c.Agent().EnableServiceMaintenanceOpts(s.ID, s.Maintenance, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return refused(fmt.Errorf("maintenance mode of %s: %w", s.ID, err))
	}
	return nil
}

// checkStatuses reads the status of a service's checks on the agent, by check ID and by Consul check
// type (the worst of each type), leaving out mirrored health. Nil if the agent does not answer: the
// registration then goes ahead with Consul's default.
func (a *Agent) checkStatuses(ctx context.Context, serviceID string) map[string]string {
	cs, err := a.c.Agent().ChecksWithFilterOpts(fmt.Sprintf("ServiceID == %q", serviceID), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil
	}
	rank := map[string]int{api.HealthPassing: 1, api.HealthWarning: 2, api.HealthCritical: 3}
	out := map[string]string{}
	for id, c := range cs {
		if strings.HasSuffix(id, ":"+health.KindMirror) {
			continue
		}
		out[id] = c.Status
		if rank[c.Status] > rank[out[c.Type]] {
			out[c.Type] = c.Status
		}
	}
	return out
}

// consulType is the Consul check type of a check kind.
func consulType(kind string) string {
	if kind == health.KindHTTPS {
		return health.KindHTTP
	}
	return kind
}

func duration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func (a *Agent) Maintain(ctx context.Context, id, note string) error {
	if err := a.c.Agent().EnableServiceMaintenanceOpts(id, note, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return refused(fmt.Errorf("maintenance mode of %s: %w", id, err))
	}
	return nil
}

func (a *Agent) UpdateTTL(ctx context.Context, checkID string, st health.State) error {
	if err := a.c.Agent().UpdateTTLOpts(checkID, st.Output, st.Status, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return refused(fmt.Errorf("update check %s: %w", checkID, err))
	}
	return nil
}

func (a *Agent) Deregister(ctx context.Context, id string) error {
	err := a.c.Agent().ServiceDeregisterOpts(id, (&api.QueryOptions{}).WithContext(ctx))
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return refused(fmt.Errorf("deregister %s: %w", id, err))
	}
	return nil
}

// refused marks an error Consul answered with (an ACL, a bad definition) as registrator.ErrRefused;
// any other error (no answer) it returns as it is.
func refused(err error) error {
	var se api.StatusError
	if errors.As(err, &se) {
		return refusal{err}
	}
	return err
}

// refusal is registrator.ErrRefused with Consul's own error, whose text it keeps: that text names
// what to fix (the permission a token lacks).
type refusal struct{ err error }

func (r refusal) Error() string   { return r.err.Error() }
func (r refusal) Unwrap() []error { return []error{r.err, registrator.ErrRefused} }
