package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// sidecarFor runs "ecs-registrator sidecar-for [flags] [-- proxy command]". Run in a proxy container,
// it finds the service whose sidecar that container is, from what the container can see: in an ECS
// task its task ARN (task metadata v4), else its hostname, which Docker sets to the short ID of the
// container whose network namespace it shares. It waits until the daemon has registered the service,
// then prints its ID, or execs the proxy command with CONNECT_SIDECAR_FOR set to it (read by
// `consul connect envoy` and `consul connect proxy`) and each {} argument replaced by it.
func sidecarFor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ecs-registrator sidecar-for", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ecs-registrator sidecar-for [flags] [-- proxy command, {} is the service ID]")
		fs.PrintDefaults()
	}
	addr := fs.String("consul", os.Getenv("CONSUL_HTTP_ADDR"), "Consul agent (host:port or URL; CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN and the TLS variables apply)")
	containerID := fs.String("container-id", "", "ID (or its first 12 characters or more) of the application container (default: this container's hostname, outside ECS)")
	taskARN := fs.String("task-arn", "", "ECS task ARN of the application (default: from $ECS_CONTAINER_METADATA_URI_V4/task when set)")
	ecsContainer := fs.String("container", "", "ECS container name of the application, when several of the task's containers are in the mesh")
	service := fs.String("service", "", "service name, when the application has several services in the mesh")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the registration")
	iamMethod := fs.String("consul-iam-auth-method", "", "log in through this aws-iam auth method with the task's IAM role, and run the proxy with that token (bound to the role's service)")
	iamServer := fs.String("consul-iam-server-id", "", "the auth method's ServerIDHeaderValue (with -consul-iam-auth-method)")
	tokenCheck := fs.Duration("token-check", 30*time.Second, "how often the proxy's token is checked (with -consul-iam-auth-method): one Consul no longer knows is replaced by a new login, and the proxy restarted with it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *wait)
	defer cancel()
	var err error
	if *taskARN == "" && *containerID == "" {
		if uri := os.Getenv("ECS_CONTAINER_METADATA_URI_V4"); uri != "" {
			var meshed int
			*taskARN, meshed, err = taskARNFrom(ctx, uri)
			if err == nil && meshed > 1 && *ecsContainer == "" {
				err = fmt.Errorf("%d containers of the task are in the mesh: say whose proxy this is with -container", meshed)
			}
		} else {
			*containerID, err = os.Hostname()
		}
		if err != nil {
			fmt.Fprintln(stderr, "ecs-registrator sidecar-for:", err)
			return 1
		}
	}
	cfg := api.DefaultConfig()
	if *addr != "" {
		if scheme, rest, ok := strings.Cut(*addr, "://"); ok {
			cfg.Scheme, cfg.Address = scheme, rest
		} else {
			cfg.Address = *addr
		}
	}
	var login *proxyLogin
	stopWait := func() {}
	if *iamMethod != "" {
		// A stop while waiting for the registration ends the wait, and the token is logged out.
		ctx, stopWait = signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stopWait()
		if login, err = newProxyLogin(ctx, *cfg, *iamMethod, *iamServer, stderr); err != nil {
			fmt.Fprintln(stderr, "ecs-registrator sidecar-for:", err)
			return 1
		}
	}
	var client *api.Client
	if login != nil {
		client, err = login.client()
	} else {
		client, err = api.NewClient(cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, "ecs-registrator sidecar-for:", err)
		return 1
	}
	m := sidecarMatch{containerID: *containerID, taskARN: *taskARN, container: *ecsContainer, service: *service}
	id, err := m.wait(ctx, client)
	if err == nil && login != nil {
		err = login.check(ctx, client, id)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ecs-registrator sidecar-for (%s): %v\n", m, err)
		if login != nil {
			login.logout()
		}
		return 1
	}
	cmd := fs.Args()
	if len(cmd) == 0 {
		fmt.Fprintln(stdout, id)
		if login != nil {
			login.logout()
		}
		return 0
	}
	path, err := exec.LookPath(cmd[0])
	if err != nil {
		fmt.Fprintln(stderr, "ecs-registrator sidecar-for:", err)
		return 1
	}
	argv := slices.Clone(cmd)
	for i, a := range argv {
		if a == "{}" {
			argv[i] = id
		}
	}
	// The ID found wins over one the task definition set: the first of two equal keys would.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "CONNECT_SIDECAR_FOR=") })
	env = append(env, "CONNECT_SIDECAR_FOR="+id)
	if login != nil {
		stopWait() // the wait is over: from here run passes the signals to the proxy
		return login.run(path, argv, env, *tokenCheck)
	}
	err = syscall.Exec(path, argv, env)
	fmt.Fprintln(stderr, "ecs-registrator sidecar-for: exec:", err)
	return 1
}

// sidecarMatch picks the sidecar registrations of one application container among the agent's.
type sidecarMatch struct {
	containerID, taskARN, container, service string
}

func (m sidecarMatch) String() string {
	s := "container " + m.containerID
	if m.taskARN != "" {
		s = "task " + m.taskARN
		if m.container != "" {
			s += " container " + m.container
		}
	}
	if m.service != "" {
		s += " service " + m.service
	}
	return s
}

// find returns the IDs of the services whose sidecar registrations match. A sidecar carries its
// service's Meta (Consul copies it), so the daemon's container and ECS keys tell whose it is.
func (m sidecarMatch) find(ctx context.Context, c *api.Client) ([]string, error) {
	all, err := c.Agent().ServicesWithFilterOpts(fmt.Sprintf("Kind == %q", api.ServiceKindConnectProxy), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range all {
		meta := s.Meta
		switch {
		case s.Proxy == nil || meta[desired.MetaExternalSource] != desired.ExternalSource:
		case m.taskARN != "" && meta[desired.MetaECSTaskARN] != m.taskARN:
		case m.container != "" && meta[desired.MetaECSContainer] != m.container:
		case m.taskARN == "" && (len(m.containerID) < 12 || !strings.HasPrefix(meta[desired.MetaContainerID], m.containerID)):
		case m.service != "" && s.Proxy.DestinationServiceName != m.service:
		default:
			ids = append(ids, s.Proxy.DestinationServiceID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// wait polls the agent until exactly one service matches. Several are an error at once: waiting
// would not make one of them the right one.
func (m sidecarMatch) wait(ctx context.Context, c *api.Client) (string, error) {
	var last error
	for {
		ids, err := m.find(ctx, c)
		switch {
		case err != nil:
			last = err
		case len(ids) == 1:
			return ids[0], nil
		case len(ids) > 1:
			return "", fmt.Errorf("%d services are in the mesh (%s); choose one with -service or -container", len(ids), strings.Join(ids, ", "))
		default:
			last = errors.New("no service in the mesh registered for it yet")
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("gave up waiting: %w", last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// taskARNFrom reads the task ARN from task metadata v4, and how many of the task's containers have
// SERVICE_CONNECT labels, retrying until ctx ends: a proxy container may start before the endpoint
// answers.
func taskARNFrom(ctx context.Context, uri string) (string, int, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		arn, meshed, err := func() (string, int, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(uri, "/")+"/task", nil)
			if err != nil {
				return "", 0, err
			}
			resp, err := client.Do(req)
			if err != nil {
				return "", 0, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return "", 0, fmt.Errorf("task metadata: %s", resp.Status)
			}
			var task struct {
				TaskARN    string
				Containers []struct{ Labels map[string]string }
			}
			if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&task); err != nil || task.TaskARN == "" {
				return "", 0, fmt.Errorf("task metadata: no TaskARN (%v)", err)
			}
			meshed := 0
			for _, c := range task.Containers {
				if slices.ContainsFunc(slices.Collect(maps.Keys(c.Labels)), isConnectLabel) {
					meshed++
				}
			}
			return task.TaskARN, meshed, nil
		}()
		if err == nil {
			return arn, meshed, nil
		}
		select {
		case <-ctx.Done():
			return "", 0, fmt.Errorf("read the task ARN: %w", err)
		case <-time.After(time.Second):
		}
	}
}

// isConnectLabel reports SERVICE_CONNECT and SERVICE_<port>_CONNECT, in any case.
func isConnectLabel(k string) bool {
	rest, ok := strings.CutPrefix(strings.ToUpper(k), "SERVICE_")
	if !ok {
		return false
	}
	if port, attr, found := strings.Cut(rest, "_"); found && strings.Trim(port, "0123456789") == "" {
		rest = attr
	}
	return rest == "CONNECT"
}
