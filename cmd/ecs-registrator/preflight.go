package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// preflight lists every running container on this host whose registration by the daemon, run with
// this command line (gliderlabs's, for a swap), would differ from gliderlabs/registrator's, and why:
// the check an operator runs on a host before swapping the image. It reads Docker only; Consul is
// not asked and nothing is written. Exit status 0: no differences; 1: some (listed); 2: bad input, or
// Docker does not answer (or could not say what a container is: the list would be incomplete).
func preflight(args []string, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "ecs-registrator preflight: "+format+"\n", a...)
		return 2
	}
	cfg, err := parseConfig(args, os.Getenv, stderr)
	if err != nil {
		return fail("%v", err)
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.docker != "" {
		opts = append(opts, client.WithHost(cfg.docker))
	}
	docker, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return fail("docker client: %v", err)
	}
	defer docker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := docker.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return fail("docker: %v", err)
	}
	ip, _, _ := advertiseIP(ctx, cfg.ip, nil)
	hostname, _ := os.Hostname()
	o := desired.Options{Node: hostname, AdvertiseIP: ip, Internal: cfg.core.Internal, OptIn: cfg.core.OptIn, HealthTTL: cfg.core.HealthTTL,
		Gliderlabs: cfg.core.Gliderlabs, IPFromLabel: cfg.core.IPFromLabel, Policy: cfg.core.Policy}

	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONTAINER\tDIFFERENCE\tKEY\tDETAIL")
	differ, unread := 0, 0
	for _, s := range list {
		in, err := docker.ContainerInspect(ctx, s.ID)
		if cerrdefs.IsNotFound(err) {
			continue // gone since the list
		}
		if err != nil {
			fmt.Fprintf(stderr, "ecs-registrator preflight: inspect %.12s: %v\n", s.ID, err)
			unread++
			continue
		}
		c := desired.FromInspect(in)
		if t, ok := ecsmeta.FromLabels(c.Labels); ok {
			c.Task = &t
		}
		diffs := desired.Preflight(c, o, cfg.ip != "")
		if len(diffs) > 0 {
			differ++
		}
		for _, d := range diffs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Name, d.Kind, d.Key, d.Detail)
		}
	}
	w.Flush()
	fmt.Fprintf(stdout, "\n%d of %d running containers would be registered differently from gliderlabs/registrator (README: \"Deliberate differences\").\n", differ, len(list))
	fmt.Fprintln(stdout, "Every container also leaves Consul when its stop signal is sent (the kill event), not when it exits.")
	if !cfg.core.Gliderlabs {
		fmt.Fprintln(stdout, "This command line has no registry URI, so it is not gliderlabs mode: service names, IDs and opt-in follow this daemon's defaults too (README: \"Coming from gliderlabs/registrator\").")
	}
	switch {
	case unread > 0:
		fmt.Fprintf(stderr, "ecs-registrator preflight: %d containers could not be read; the list is incomplete\n", unread)
		return 2
	case differ > 0:
		return 1
	}
	return 0
}
