package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// PrintTable writes the compact table `ecs-registrator status` prints.
func PrintTable(w io.Writer, s Snapshot) error {
	ready := "ready"
	if !s.Daemon.Ready {
		ready = "NOT READY"
	}
	fmt.Fprintf(w, "ecs-registrator %s on node %s, advertising %s, %s\n", s.Daemon.Version, s.Daemon.Node, s.Daemon.AdvertiseIP, ready)
	var deps []string
	for _, d := range s.Dependencies {
		st := "up"
		switch {
		case !d.Enabled:
			continue
		case !d.Up && d.LastError != "":
			st = "DOWN"
		case !d.Up:
			st = "not asked"
		}
		deps = append(deps, d.Name+" "+st)
	}
	fmt.Fprintf(w, "%s\n", strings.Join(deps, ", "))
	fmt.Fprintf(w, "%s\n", s.Daemon.Policy)
	if s.Host.Draining {
		fmt.Fprintf(w, "HOST DRAINING: %s; every container is drained and new ones are kept out\n", s.Host.Reason)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER\tID\tSTATE\tSERVICES\tCHECKS\tWHY / PROBLEMS")
	for _, c := range s.Containers {
		var svcs, checks []string
		for _, sv := range c.Services {
			svcs = append(svcs, sv.Name+"@"+sv.Address)
			for _, ch := range sv.Checks {
				checks = append(checks, ch.Status)
			}
			if c := sv.Connect; c != nil {
				mesh := "+sidecar@" + c.Address
				if len(c.Upstreams) > 0 {
					mesh += "->" + strings.Join(c.Upstreams, ",")
				}
				svcs[len(svcs)-1] += mesh
				for _, ch := range c.Checks {
					checks = append(checks, ch.Status)
				}
			}
		}
		why := c.Reason
		for _, p := range c.Problems {
			if why != "" {
				why += "; "
			}
			why += p.Severity + " " + strings.TrimSpace(p.Key+" "+p.Message)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.ShortID(), c.State, orDash(strings.Join(svcs, " ")),
			orDash(strings.Join(checks, ",")), orDash(why))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
