// Package status is the daemon's read-only operator surface: the snapshot of what it knows (the JSON
// documented in the README), the HTML page rendered from that same snapshot, /healthz, /readyz and
// /metrics, and the table `ecs-registrator status` prints. It answers "why is (or isn't) my container
// in Consul?" without reading logs. It serves only requests that name it by a loopback name, an IP
// address or the -listen host (host.go: against DNS rebinding).
package status
