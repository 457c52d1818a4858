// Command ecs-registrator registers the local Docker engine's opted-in containers with the local Consul
// agent. Flags have REGISTRATOR_<FLAG> environment equivalents; flags win.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/docker/docker/client"
	"github.com/lmittmann/tint"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/promtext"
	"github.com/ecs-registrator/ecs-registrator/registrator"
	"github.com/ecs-registrator/ecs-registrator/registrator/consul"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
	"github.com/ecs-registrator/ecs-registrator/status"
)

// gcPercent is the garbage collector's target unless GOGC is set.
const gcPercent = 50

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "status", "healthcheck", "version":
			os.Exit(subcommand(os.Args[1], os.Args[2:], os.Stdout, os.Stderr))
		case "sidecar-for":
			os.Exit(sidecarFor(os.Args[2:], os.Stdout, os.Stderr))
		case "preflight":
			os.Exit(preflight(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(run(os.Args[1:], os.Stderr))
}

// config is everything the flags and environment say.
type config struct {
	consul    string
	docker    string
	ip        string
	listen    listenAddr
	logFormat string
	logLevel  string
	dryRun    bool
	iamMethod string
	iamServer string
	agentURI  string
	tmdsURI   string
	ecsAPI    bool
	tagMeta   string
	tags      string
	policy    string // -policy as given; core.Policy is what it says
	hostDrain bool
	// hostDrainMargin: how long before a Spot notice's time the services ECS has not stopped leave.
	hostDrainMargin time.Duration
	// core is the core's configuration as the flags give it: Internal, OptIn, Resync, Drain, Workers,
	// HealthTTL, Tags (or InspectTags in gliderlabs mode, where Gliderlabs is set), Policy, and from
	// gliderlabs's flags or -migrate-gliderlabs KeepFailed, IPFromLabel and Migrate. serve adds what
	// only a running daemon knows (the advertise address, the ECS source, the logger).
	core  registrator.Config
	shown map[string]string // every flag's value, for the status page; nothing secret is a flag
}

// envName is the environment variable of a flag: REGISTRATOR_ and its name in upper snake case.
func envName(flag string) string {
	return "REGISTRATOR_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// parseConfig reads flags, with REGISTRATOR_<FLAG> env vars as their defaults.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("ecs-registrator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.consul, "consul", "", "Consul agent address (host:port or URL); default CONSUL_HTTP_ADDR, else 127.0.0.1:8500")
	fs.StringVar(&c.docker, "docker", "", "Docker Engine address; default DOCKER_HOST, else the local socket")
	fs.StringVar(&c.ip, "ip", "", "advertise IP for published ports; default EC2 local-ipv4, else the host's primary address")
	fs.BoolVar(&c.core.Internal, "internal", false, "register container IPs and container ports instead of published ports")
	fs.BoolVar(&c.core.OptIn, "opt-in", true, "register only containers with SERVICE_NAME, SERVICE_<port>_NAME or SERVICE_REGISTER=true")
	c.core.Resync = 30 * time.Second
	fs.Var(seconds{&c.core.Resync}, "resync", "interval of the full resync that repairs drift, a duration or (as gliderlabs) seconds; 0 disables (default 30s)")
	fs.StringVar((*string)(&c.core.Drain), "drain", string(registrator.DrainDeregister), "how a stopping container leaves Consul: deregister or maintenance")
	listen := fs.String("listen", "127.0.0.1:9555", "address of the status server (page, /v1/status, /metrics, /healthz, /readyz): host:port, or unix:///path for a Unix socket")
	fs.StringVar(&c.logFormat, "log-format", "auto", "auto (text on a terminal, else JSON), text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.dryRun, "dry-run", false, "log what would be registered; write nothing to Consul")
	fs.StringVar(&c.iamMethod, "consul-iam-auth-method", "", "log in to Consul through this aws-iam auth method with the daemon's AWS credentials, instead of a token")
	fs.StringVar(&c.iamServer, "consul-iam-server-id", "", "the auth method's ServerIDHeaderValue, when it has one (with -consul-iam-auth-method)")
	fs.IntVar(&c.core.Workers, "workers", 8, "containers reconciled in parallel")
	fs.StringVar(&c.agentURI, "ecs-agent-uri", "http://127.0.0.1:51678", "ECS agent introspection API (\"\" disables)")
	fs.StringVar(&c.tmdsURI, "ecs-tmds-uri", "http://127.0.0.1:51679", "ECS task metadata endpoint, reached from the host (\"\" disables)")
	fs.BoolVar(&c.ecsAPI, "ecs-api", false, "call ECS DescribeTasks for service names and task tags, and DescribeContainerInstances while the host is going away (needs ecs:DescribeTasks, ecs:DescribeContainerInstances)")
	fs.StringVar(&c.tagMeta, "ecs-tag-meta", "", "comma list of task tags copied into service Meta (from task metadata /taskWithTags, else -ecs-api)")
	fs.DurationVar(&c.core.HealthTTL, "health-ttl", registrator.DefaultHealthTTL, "TTL of the checks mirroring Docker and ECS health; refreshed every third of it")
	fs.StringVar(&c.core.Self, "self-service", "ecs-registrator", "the service under which the daemon registers itself on its node, with a TTL check it heartbeats: critical within 30s when the daemon is down (alert on it); \"\" or none for none")
	fs.BoolVar(&c.hostDrain, "host-drain", true, "drain every container when instance metadata says the host is going away (EC2 Spot interruption notice, Auto Scaling Terminated)")
	fs.DurationVar(&c.hostDrainMargin, "host-drain-margin", 30*time.Second, "on a Spot interruption notice, services ECS has not stopped stay until the interruption time less this margin")
	fs.StringVar(&c.tags, "tags", "", "comma list of Go templates added to every service's tags, e.g. az-{{.AvailabilityZone}}")
	fs.StringVar(&c.policy, "policy", "", "registration policy: a JSON file (or the JSON itself, starting with '{') saying which containers may claim which service names, IDs and the mesh, e.g. {\"default\": \"ecs-identity\"}; without one any container may claim any name")
	var migrate bool
	fs.BoolVar(&migrate, "migrate-gliderlabs", false, "take over the services gliderlabs/registrator left on this host's agent under its default IDs (<hostname>:<container>:<port>) where this daemon registers the same ID, and remove the ones no running container accounts for")
	var glider gliderlabsFlags
	glider.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ecs-registrator [flags] [consul://host:port]\n\nThe registry URI, as gliderlabs/registrator takes it, also selects its defaults.\nEvery flag can also be set as REGISTRATOR_<FLAG> (e.g. REGISTRATOR_OPT_IN=false); flags win.\n\n")
		fs.PrintDefaults()
	}

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if getenv(envName(f.Name)) != "" {
			set[f.Name] = true
		}
	})
	if fs.NArg() > 0 && !isURI(fs.Arg(0)) {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := c.applyGliderlabs(fs.Args(), &glider, set); err != nil {
		return c, err
	}
	if migrate {
		c.core.Migrate.Adopt, c.core.Migrate.Cleanup = true, true
	}
	if c.docker == "" {
		c.docker = dockerSocketFallback(getenv)
	}
	c.shown = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { c.shown[f.Name] = redactURL(f.Value.String()) })
	listenAt, err := parseListen(*listen)
	if err != nil {
		return c, fmt.Errorf("-listen: %w", err)
	}
	c.listen = listenAt
	if c.hostDrainMargin <= 0 {
		return c, fmt.Errorf("-host-drain-margin must be more than 0, not %v: the services must be out before the Spot instance is", c.hostDrainMargin)
	}
	switch c.core.Drain {
	case registrator.DrainDeregister, registrator.DrainMaintenance:
	default:
		return c, fmt.Errorf("-drain must be deregister or maintenance, not %q", c.core.Drain)
	}
	switch c.logFormat {
	case "auto", "text", "json":
	default:
		return c, fmt.Errorf("-log-format must be auto, text or json, not %q", c.logFormat)
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		return c, err
	}
	if c.ip != "" {
		if _, err := netip.ParseAddr(c.ip); err != nil {
			return c, fmt.Errorf("-ip: %w", err)
		}
	}
	if c.core.Resync < 0 {
		return c, errors.New("-resync must not be negative")
	}
	if c.core.Workers < 1 {
		return c, errors.New("-workers must be at least 1")
	}
	if c.core.HealthTTL < 3*time.Second {
		return c, errors.New("-health-ttl must be at least 3s")
	}
	if c.core.Self == "none" {
		c.core.Self = "" // REGISTRATOR_SELF_SERVICE cannot be empty: an empty variable counts as unset
	}
	if err := validServiceName(c.core.Self); c.core.Self != "" && err != nil {
		return c, fmt.Errorf("-self-service: %w", err)
	}
	for _, u := range []struct{ flag, v string }{{"-ecs-agent-uri", c.agentURI}, {"-ecs-tmds-uri", c.tmdsURI}} {
		if u.v == "" {
			continue
		}
		if p, err := url.Parse(u.v); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return c, fmt.Errorf("%s must be an http:// URL, not %q", u.flag, u.v)
		}
	}
	if c.tagMeta != "" && !c.ecsAPI && c.tmdsURI == "" {
		return c, errors.New("-ecs-tag-meta needs task metadata (-ecs-tmds-uri) or -ecs-api: task tags come from one of them")
	}
	if c.policy != "" {
		// A policy that does not parse stops the daemon: running without it would let any container
		// claim any name, which is what its operator meant to stop.
		if c.core.Policy, err = desired.LoadPolicy(c.policy); err != nil {
			return c, fmt.Errorf("-policy: %w", err)
		}
	}
	switch {
	case c.core.Gliderlabs && c.tags != "":
		// gliderlabs's -tags: one template over the docker inspect document, then split.
		if c.core.InspectTags, err = desired.ParseInspectTagTemplate(c.tags); err != nil {
			return c, fmt.Errorf("-tags: %w", err)
		}
	default:
		if c.core.Tags, err = desired.ParseTagTemplates(c.tags); err != nil {
			return c, fmt.Errorf("-tags: %w", err)
		}
	}
	return c, nil
}

// redactURL hides a password in a URL-shaped value (https://user:secret@consul:8501).
func redactURL(v string) string {
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "redacted")
			return u.String()
		}
	}
	return v
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("-log-level must be debug, info, warn or error, not %q", s)
	}
	return l, nil
}

func newLogger(format, level string, w *os.File) *slog.Logger {
	lvl, _ := parseLevel(level)
	if format == "text" || format == "auto" && isTerminal(w) {
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: lvl, TimeFormat: time.TimeOnly, NoColor: !isTerminal(w)}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}))
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func run(args []string, stderr *os.File) int {
	cfg, err := parseConfig(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "ecs-registrator:", err)
		return 2
	}
	log := newLogger(cfg.logFormat, cfg.logLevel, stderr)
	if os.Getenv("GOGC") == "" {
		// The live heap is small (about 1.5 MB with 150 containers) and mostly garbage from decoding
		// Docker's and Consul's JSON: collecting at 50% growth instead of 100% keeps about 1.5 MB less
		// resident on every host for little CPU. GOGC still overrides it.
		debug.SetGCPercent(gcPercent)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		// A second signal exits at once; the first one has cancelled ctx already.
		<-ctx.Done()
		stop()
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		log.Warn("second signal: exiting now")
		os.Exit(1)
	}()

	if err := serve(ctx, cfg, log); err != nil {
		log.Error("exiting", "err", err)
		return 1
	}
	log.Info("stopped; registrations left in place")
	return 0
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	dockerOpts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.docker != "" {
		dockerOpts = append(dockerOpts, client.WithHost(cfg.docker))
	}
	docker, err := client.NewClientWithOpts(dockerOpts...)
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer docker.Close()

	var consulOpts []consul.Option
	if cfg.iamMethod != "" {
		consulOpts = append(consulOpts, consul.WithIAMLogin(cfg.iamMethod, cfg.iamServer, ecsmeta.Credentials()))
	}
	agent, err := consul.NewAgent(cfg.consul, consulOpts...)
	if err != nil {
		return err
	}
	defer func() {
		// A token the daemon logged in for is given back; registrations stay.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := agent.Close(ctx); err != nil {
			log.Warn("consul logout failed", "err", err)
		}
	}()
	var sink registrator.Agent = agent
	if cfg.dryRun {
		sink = registrator.NewDryRun(agent, log.With("component", "consul"))
	}

	var imdsClient *imds.Client
	if !strings.EqualFold(os.Getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		imdsClient = ecsmeta.NewIMDS()
	}
	// The host's lifecycle is watched from the start, alongside the identity lookup below, so that a
	// daemon started on a host that is already going registers nothing.
	var lifecycle *ecsmeta.Lifecycle
	var background sync.WaitGroup
	bgCtx, stopBackground := context.WithCancel(ctx)
	defer func() { stopBackground(); background.Wait() }()
	if imdsClient != nil && cfg.hostDrain {
		lifecycle = ecsmeta.NewLifecycle(ecsmeta.LifecycleConfig{IMDS: imdsClient, Margin: cfg.hostDrainMargin, Logger: log})
		background.Go(func() { _ = lifecycle.Run(bgCtx) })
	}
	ip, ipFrom, host := advertiseIP(ctx, cfg.ip, imdsClient)
	if !ip.IsValid() {
		log.Warn("no advertise IP found; bridge and host containers cannot be registered until -ip is set")
	}
	// gliderlabs's service IDs and its -cleanup start with the hostname; so do this daemon's in
	// gliderlabs mode, so that a swap keeps every ID.
	hostname, _ := os.Hostname()
	idPrefix := ""
	if cfg.core.Gliderlabs {
		idPrefix = hostname
	}
	cfg.core.Migrate.Hostname = hostname
	log.Info("starting", "version", version, "advertise_ip", ip.String(), "ip_from", ipFrom,
		"docker", docker.DaemonHost(), "opt_in", cfg.core.OptIn, "drain", cfg.core.Drain, "resync", cfg.core.Resync, "dry_run", cfg.dryRun,
		"gliderlabs_mode", cfg.core.Gliderlabs, "adopt_gliderlabs", cfg.core.Migrate.Adopt, "cleanup_gliderlabs", cfg.core.Migrate.Cleanup,
		"policy", policyView(cfg.core.Policy).String())

	metrics := promtext.NewRegistry()
	metrics.Runtime()
	started := time.Now()
	ecs := ecsmeta.New(ecsmeta.Config{
		AgentURL: cfg.agentURI,
		TMDSURL:  cfg.tmdsURI,
		IMDS:     imdsClient,
		Host:     host,
		// An IPv6 address from the default route: there is no IPv4 one, and AWS endpoints are
		// reached at their dual-stack names (on EC2 instance metadata tells ecsmeta the same).
		IPv6Only: ipFrom == "default route" && ip.Is6(),
		API:      cfg.ecsAPI,
		TagMeta:  splitList(cfg.tagMeta),
		Logger:   log,
	})
	rcfg := cfg.core
	rcfg.AdvertiseIP, rcfg.IDPrefix, rcfg.ECS, rcfg.Logger, rcfg.Metrics, rcfg.Version = ip, idPrefix, ecs, log, metrics, version
	if cfg.dryRun {
		rcfg.Self = "" // a dry run writes nothing, and is not the node's daemon
	}
	if lifecycle != nil {
		lifecycle.WatchECS(ecs)
		rcfg.HostLifecycle = lifecycle
		registerAdviceMetrics(metrics, lifecycle)
	}
	reg := registrator.New(docker, sink, rcfg)

	ln, err := cfg.listen.listen()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
		log.Warn("the status server listens beyond loopback; it shows container names, images and addresses to anyone who reaches it", "addr", ln.Addr().String())
	}
	src := daemonStatus{reg: reg, consul: agent.Client(), ecs: ecs, lifecycle: lifecycle, version: version, started: started, config: cfg.shown,
		policy: policyView(cfg.core.Policy)}
	srv := &http.Server{Handler: status.Handler(src, metrics, cfg.listen.host()), ReadHeaderTimeout: 5 * time.Second}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	log.Info("http server listening", "addr", listenAddr{ln.Addr().Network(), ln.Addr().String()}.String())

	if lifecycle != nil {
		// Its first answer, or the lack of one, comes within a request timeout or two; off EC2 the
		// identity lookup above has usually waited that long already.
		select {
		case <-lifecycle.Checked():
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
		}
	}
	runErr := reg.Run(ctx)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err := <-srvDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// selfNameRE is what -self-service may be: a DNS label, so that <name>.service.consul resolves.
var selfNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func validServiceName(name string) error {
	if !selfNameRE.MatchString(name) {
		return fmt.Errorf("%q is not a DNS label (letters, digits and '-', at most 63)", name)
	}
	return nil
}
