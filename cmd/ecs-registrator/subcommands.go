package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/ecs-registrator/ecs-registrator/status"
)

// subcommand runs status, healthcheck or version. They talk to a running daemon's status server, whose
// address is -addr, else REGISTRATOR_LISTEN, else the default listen address; a Unix socket
// (unix:///path) too, so that the image's health check follows the daemon's -listen.
func subcommand(name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ecs-registrator "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", cmp.Or(os.Getenv("REGISTRATOR_LISTEN"), "127.0.0.1:9555"), "the daemon's status server (host:port, or unix:///path)")
	asJSON := fs.Bool("json", false, "print the whole snapshot as JSON (status only)")
	ready := fs.Bool("ready", false, "check readiness (/readyz: synced and Consul answers) instead of liveness (healthcheck only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if name == "version" {
		fmt.Fprintln(stdout, "ecs-registrator", version)
		return 0
	}
	at, err := parseListen(*addr)
	if err != nil {
		fmt.Fprintf(stderr, "ecs-registrator %s: -addr: %v\n", name, err)
		return 2
	}
	client, base := at.client(5 * time.Second)
	if name == "healthcheck" {
		// The image's and the task definition's health check (the image has no shell or curl). It is
		// liveness: a Consul outage, however long, must not get the daemon replaced on every host.
		path := "/healthz"
		if *ready {
			path = "/readyz"
		}
		resp, err := client.Get(base + path)
		if err != nil {
			fmt.Fprintln(stderr, "unhealthy:", err)
			return 1
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			fmt.Fprintf(stderr, "unhealthy: %s: %s", resp.Status, body)
			return 1
		}
		fmt.Fprint(stdout, string(body))
		return 0
	}
	resp, err := client.Get(base + "/v1/status")
	if err != nil {
		fmt.Fprintln(stderr, "ecs-registrator status:", err)
		return 1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "ecs-registrator status: %s %v\n", resp.Status, err)
		return 1
	}
	if *asJSON {
		_, _ = stdout.Write(body)
		return 0
	}
	var snap status.Snapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		fmt.Fprintln(stderr, "ecs-registrator status: not a status snapshot:", err)
		return 1
	}
	if err := status.PrintTable(stdout, snap); err != nil {
		return 1
	}
	return 0
}
