package registrator

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// rec is a running, inspected container started at t0+startedSec wanting the given service IDs.
func rec(id string, startedSec int, sids ...string) *record {
	c := &desired.Container{ID: id, Name: "n-" + id, Running: true, StartedAt: t0.Add(time.Duration(startedSec) * time.Second)}
	r := &record{id: id, container: c}
	for _, sid := range sids {
		r.services = append(r.services, held(sid, id))
	}
	return r
}

func held(sid, containerID string) desired.Service {
	return desired.Service{ID: sid, Name: "web", Address: "10.0.0.5", Port: 8080, ContainerID: containerID,
		Meta: map[string]string{desired.MetaExternalSource: desired.ExternalSource, desired.MetaContainerID: containerID}}
}

func with(r *record, f func(*record)) *record { f(r); return r }

// port80 gives a container port 80, published on 8080 (the port held services are at).
func port80(r *record) { r.container.Ports = []desired.Port{{Port: 80, Proto: "tcp", HostPort: 8080}} }

func killed(signal string) func(*record) {
	return func(r *record) { r.kill = killMark{signal: signal, at: r.container.StartedAt.Add(time.Second)} }
}

func died(r *record) { r.diedAt = r.container.StartedAt.Add(2 * time.Second) }

// exited is a die event with an exit code.
func exited(code int) func(*record) {
	return func(r *record) { died(r); r.exitCode = &code }
}

func healthy(status string) func(*record) {
	return func(r *record) {
		for i := range r.services {
			r.services[i].Health = &health.State{Status: status, Output: "probe"}
		}
	}
}

func TestPlan(t *testing.T) {
	maint := func(r *record, sid string) desired.Service {
		s := held(sid, r.id)
		s.Maintenance = drainNote(r.container.StartedAt)
		return s
	}
	a := rec("aaaa", 0, "web1")
	const spot = "EC2 Spot interruption notice: terminate at 2026-11-28T10:02:00Z"
	hostMaint := func(sid, containerID string) desired.Service {
		s := held(sid, containerID)
		s.Maintenance = hostDrainNote(spot)
		return s
	}
	tests := []struct {
		name     string
		records  []*record
		held     []desired.Service // what the agent holds
		foreign  []string
		mirrored map[string]ttlPush
		drain    DrainMode
		// keep is -deregister on-success; unmarked are foreign services without an external-source
		// (also in foreign), migrate what to do with them (Hostname "host1").
		keep     bool
		unmarked []desired.Service
		migrate  Migration
		// want: the plan's writes, as "-id" (deregister), "+id@container" (register), "~check=status" (mirror)
		want    []string
		clashes map[string]string // container -> a word its clash problem must contain
		// host is why the whole host is going away; note, when set, is the maintenance note every
		// registration in maintenance must carry.
		host string
		note string
	}{
		{name: "new container is registered", records: []*record{rec("aaaa", 0, "web1")},
			want: []string{"+web1@aaaa"}},
		{name: "unchanged writes nothing", records: []*record{rec("aaaa", 0, "web1")}, held: []desired.Service{held("web1", "aaaa")}},
		{name: "changed service is registered again", records: []*record{rec("aaaa", 0, "web1")},
			held: []desired.Service{{ID: "web1", Name: "old", ContainerID: "aaaa"}}, want: []string{"+web1@aaaa"}},
		{name: "gone container is deregistered", held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "stray without a container is deregistered", held: []desired.Service{held("x", "")}, want: []string{"-x"}},
		{name: "not yet inspected keeps what it holds", records: []*record{{id: "aaaa"}}, held: []desired.Service{held("web1", "aaaa")}},
		{name: "service the container no longer wants goes", records: []*record{rec("aaaa", 0, "web1")},
			held: []desired.Service{held("web1", "aaaa"), held("web2", "aaaa")}, want: []string{"-web2"}},
		{name: "stopped container is deregistered", records: []*record{with(rec("aaaa", 0, "web1"), died)},
			held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "SIGTERM drains at once", records: []*record{with(rec("aaaa", 0, "web1"), killed("15"))},
			held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "SIGKILL by name drains", records: []*record{with(rec("aaaa", 0, "web1"), killed("SIGKILL"))},
			held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "SIGHUP is no stop", records: []*record{with(rec("aaaa", 0, "web1"), killed("1"))},
			held: []desired.Service{held("web1", "aaaa")}},
		{name: "the container's own stop signal drains", records: []*record{with(rec("aaaa", 0, "web1"), func(r *record) {
			r.container.StopSignal = "SIGUSR2"
			killed("12")(r)
		})}, held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "a kill before this run started is history", records: []*record{with(rec("aaaa", 0, "web1"), func(r *record) {
			r.kill = killMark{signal: "15", at: r.container.StartedAt.Add(-time.Second)}
		})}, held: []desired.Service{held("web1", "aaaa")}},
		{name: "ECS STOPPED drains", records: []*record{with(rec("aaaa", 0, "web1"), func(r *record) {
			r.task = &ecsmeta.Task{DesiredStatus: ecsmeta.StatusStopped}
		})}, held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "maintenance drain keeps the service in maintenance", drain: DrainMaintenance,
			records: []*record{with(rec("aaaa", 0, "web1"), killed("15"))}, held: []desired.Service{held("web1", "aaaa")},
			want: []string{"+web1@aaaa maint"}},
		{name: "maintenance found after a daemon restart is kept", drain: DrainMaintenance,
			records: []*record{a}, held: []desired.Service{maint(a, "web1")}},
		{name: "maintenance of an earlier run is lifted by starting over", drain: DrainMaintenance,
			records: []*record{rec("aaaa", 5, "web1")}, held: []desired.Service{maint(rec("aaaa", 0), "web1")},
			want: []string{"-web1", "+web1@aaaa"}},
		{name: "first started keeps the ID", records: []*record{rec("bbbb", 1, "web1"), rec("aaaa", 2, "web1")},
			want: []string{"+web1@bbbb"}, clashes: map[string]string{"aaaa": "bbbb"}},
		{name: "tie goes to the lower container ID", records: []*record{rec("bbbb", 1, "web1"), rec("aaaa", 1, "web1")},
			want: []string{"+web1@aaaa"}, clashes: map[string]string{"bbbb": "aaaa"}},
		{name: "holder keeps the ID: nothing written", records: []*record{rec("bbbb", 1, "web1"), rec("aaaa", 2, "web1")},
			held: []desired.Service{held("web1", "bbbb")}, clashes: map[string]string{"aaaa": "bbbb"}},
		{name: "an earlier starter takes the ID over from a later one", records: []*record{rec("bbbb", 1, "web1"), rec("aaaa", 2, "web1")},
			held: []desired.Service{held("web1", "aaaa")}, want: []string{"+web1@bbbb"}, clashes: map[string]string{"aaaa": "bbbb"}},
		{name: "hand-over when the holder goes", records: []*record{rec("aaaa", 2, "web1")},
			held: []desired.Service{held("web1", "bbbb")}, want: []string{"+web1@aaaa"}},
		{name: "hand-over when the holder drains", records: []*record{with(rec("bbbb", 1, "web1"), killed("15")), rec("aaaa", 2, "web1")},
			held: []desired.Service{held("web1", "bbbb")}, want: []string{"+web1@aaaa"}},
		{name: "a draining holder yields in maintenance mode too", drain: DrainMaintenance,
			records: []*record{with(rec("bbbb", 1, "web1"), killed("15")), rec("aaaa", 2, "web1")},
			held:    []desired.Service{held("web1", "bbbb")}, want: []string{"+web1@aaaa"}, clashes: map[string]string{"bbbb": "aaaa"}},
		{name: "foreign service keeps its ID", records: []*record{rec("aaaa", 0, "web1", "web2")}, foreign: []string{"web1"},
			want: []string{"+web2@aaaa"}, clashes: map[string]string{"aaaa": "does not own"}},
		{name: "health mirror pushed with a registration", records: []*record{with(rec("aaaa", 0, "web1"), healthy("passing"))},
			want: []string{"+web1@aaaa", "~service:web1:health=passing"}},
		{name: "health change pushed alone", records: []*record{with(rec("aaaa", 0, "web1"), healthy("critical"))},
			held: []desired.Service{held("web1", "aaaa")}, mirrored: map[string]ttlPush{"service:web1:health": {State: health.State{Status: "passing", Output: "probe"}}},
			want: []string{"~service:web1:health=critical"}},
		{name: "unchanged health writes nothing", records: []*record{with(rec("aaaa", 0, "web1"), healthy("passing"))},
			held: []desired.Service{held("web1", "aaaa")}, mirrored: map[string]ttlPush{"service:web1:health": {State: health.State{Status: "passing", Output: "probe"}}}},
		{name: "a holder not yet inspected keeps the ID", records: []*record{{id: "bbbb"}, rec("aaaa", 2, "web1")},
			held: []desired.Service{held("web1", "bbbb")}, clashes: map[string]string{"aaaa": "not yet inspected"}},
		{name: "an operator's maintenance is left alone", records: []*record{rec("aaaa", 0, "web1")},
			held: []desired.Service{with2(held("web1", "aaaa"), func(s *desired.Service) { s.Maintenance = "kernel upgrade" })}},
		{name: "a foreign service is never deregistered", held: []desired.Service{held("web1", "gone")}, foreign: []string{"web1"}},
		{name: "on-success: a container that exited 1 keeps its services, its health critical", keep: true,
			records:  []*record{with(with(rec("aaaa", 0, "web1"), exited(1)), healthy("passing"))},
			held:     []desired.Service{held("web1", "aaaa")},
			mirrored: map[string]ttlPush{"service:web1:health": {State: health.State{Status: "passing"}}},
			want:     []string{"~service:web1:health=critical"}},
		{name: "on-success: exit 0 deregisters", keep: true, records: []*record{with(rec("aaaa", 0, "web1"), exited(0))},
			held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "on-success: a signal's exit code deregisters", keep: true, records: []*record{with(rec("aaaa", 0, "web1"), exited(137))},
			held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "on-success: a container stopped with SIGTERM that exits 1 stays out", keep: true,
			records: []*record{with(with(rec("aaaa", 0, "web1"), killed("15")), exited(1))}, held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "always: exit 1 deregisters", records: []*record{with(rec("aaaa", 0, "web1"), exited(1))},
			held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "on-success after a daemon restart: what the agent holds is kept", keep: true,
			records: []*record{with(rec("aaaa", 0), func(r *record) { r.container.Running, r.container.ExitCode = false, 2 })},
			held:    []desired.Service{held("web1", "aaaa")}},
		{name: "on-success: a running container takes the ID from a failed one", keep: true,
			records: []*record{with(rec("aaaa", 0, "web1"), exited(1)), rec("bbbb", 5, "web1")},
			held:    []desired.Service{held("web1", "aaaa")}, want: []string{"+web1@bbbb"}, clashes: map[string]string{"aaaa": "bbbb"}},
		{name: "gliderlabs registration adopted in place by ID prefix", migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{with(rec("aaaa", 0, "host1:n-aaaa:80"), port80)}, foreign: []string{"host1:n-aaaa:80"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:80", Address: "10.9.9.9", Port: 1}}, want: []string{"+host1:n-aaaa:80@aaaa"}},
		{name: "gliderlabs registration of a UDP port adopted", migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{with(rec("aaaa", 0, "host1:n-aaaa:53:udp"), func(r *record) {
				r.container.Ports = []desired.Port{{Port: 53, Proto: "udp", HostPort: 8080}}
			})}, foreign: []string{"host1:n-aaaa:53:udp"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:53:udp"}}, want: []string{"+host1:n-aaaa:53:udp@aaaa"}},
		// The hijack: a service registered by hand at the address and port of a container that asks for
		// its ID is not gliderlabs's, whatever it names; the container shows the clash, and its stop
		// takes nothing with it.
		{name: "a hand-registered vault at the container's address and port is left alone", migrate: Migration{Adopt: true, Cleanup: true, Hostname: "host1"},
			records: []*record{with(rec("aaaa", 0, "vault"), port80)}, foreign: []string{"vault"},
			unmarked: []desired.Service{{ID: "vault", Name: "vault", Address: "10.0.0.5", Port: 8080}},
			clashes:  map[string]string{"aaaa": "not taken over"}},
		{name: "vault: the container stopping takes nothing with it", migrate: Migration{Adopt: true, Cleanup: true, Hostname: "host1"},
			records: []*record{with(with(rec("aaaa", 0, "vault"), port80), killed("15"))}, foreign: []string{"vault"},
			unmarked: []desired.Service{{ID: "vault", Name: "vault", Address: "10.0.0.5", Port: 8080}}},
		{name: "vault: nor its death", migrate: Migration{Adopt: true, Cleanup: true, Hostname: "host1"},
			records: []*record{with(with(rec("aaaa", 0, "vault"), port80), died)}, foreign: []string{"vault"},
			unmarked: []desired.Service{{ID: "vault", Name: "vault", Address: "10.0.0.5", Port: 8080}}},
		{name: "another container's gliderlabs ID is not adopted", migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{with(rec("bbbb", 0, "host1:n-aaaa:80"), port80)}, foreign: []string{"host1:n-aaaa:80"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:80", Address: "10.0.0.5", Port: 8080}}, clashes: map[string]string{"bbbb": "not taken over"}},
		{name: "a port the container does not have is not adopted", migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{with(rec("aaaa", 0, "host1:n-aaaa:81"), port80)}, foreign: []string{"host1:n-aaaa:81"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:81"}}, clashes: map[string]string{"aaaa": "not taken over"}},
		{name: "the other protocol of the port is not adopted", migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{with(rec("aaaa", 0, "host1:n-aaaa:80:udp"), port80)}, foreign: []string{"host1:n-aaaa:80:udp"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:80:udp"}}, clashes: map[string]string{"aaaa": "not taken over"}},
		{name: "another port's ID on a service of the container is not adopted", migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{with(rec("aaaa", 0, "host1:n-aaaa:443"), func(r *record) {
				r.container.Ports = []desired.Port{{Port: 80, Proto: "tcp", HostPort: 8080}, {Port: 443, Proto: "tcp", HostPort: 8443}}
			})}, foreign: []string{"host1:n-aaaa:443"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:443"}}, clashes: map[string]string{"aaaa": "not taken over"}},
		{name: "a squatter that started first does not keep gliderlabs's registration from its container",
			migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{with(rec("bbbb", 0, "host1:n-aaaa:80"), port80), with(rec("aaaa", 5, "host1:n-aaaa:80"), port80)},
			foreign: []string{"host1:n-aaaa:80"}, unmarked: []desired.Service{{ID: "host1:n-aaaa:80"}},
			want: []string{"+host1:n-aaaa:80@aaaa"}, clashes: map[string]string{"bbbb": "gliderlabs/registrator registered it"}},
		{name: "without adopt an unmarked registration is foreign, with a hint",
			records: []*record{with(rec("aaaa", 0, "host1:n-aaaa:80"), port80)}, foreign: []string{"host1:n-aaaa:80"}, migrate: Migration{Hostname: "host1"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:80"}}, clashes: map[string]string{"aaaa": "-migrate-gliderlabs"}},
		{name: "without adopt no hint for what adopting would not take either",
			records: []*record{with(rec("aaaa", 0, "vault"), port80)}, foreign: []string{"vault"}, migrate: Migration{Hostname: "host1"},
			unmarked: []desired.Service{{ID: "vault", Address: "10.0.0.5", Port: 8080}}, clashes: map[string]string{"aaaa": "left untouched"}},
		{name: "another host's prefix at another address is not adopted", migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{with(rec("aaaa", 0, "host2:n-aaaa:80"), port80)}, foreign: []string{"host2:n-aaaa:80"},
			unmarked: []desired.Service{{ID: "host2:n-aaaa:80", Address: "10.9.9.9", Port: 80}}, clashes: map[string]string{"aaaa": "does not own"}},
		{name: "adopt: a registration of a stopping container is released", migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{with(with(rec("aaaa", 0, "host1:n-aaaa:80"), port80), killed("15"))}, foreign: []string{"host1:n-aaaa:80"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:80"}}, want: []string{"-host1:n-aaaa:80"}},
		{name: "adopt: a registration of a container that died is released", migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{with(with(rec("aaaa", 0, "host1:n-aaaa:80"), port80), died)}, foreign: []string{"host1:n-aaaa:80"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:80", Address: "10.0.0.5", Port: 8080}}, want: []string{"-host1:n-aaaa:80"}},
		{name: "adopt: gliderlabs's copy under another prefix goes once ours is held", migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{with(rec("aaaa", 0, "node1:n-aaaa:8080"), func(r *record) { r.container.Ports = []desired.Port{{Port: 8080, Proto: "tcp"}} })},
			held:    []desired.Service{held("node1:n-aaaa:8080", "aaaa")}, foreign: []string{"host1:n-aaaa:8080", "host1:n-aaaa:9090"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:8080", Address: "10.0.0.5", Port: 8080}, {ID: "host1:n-aaaa:9090", Address: "10.0.0.5", Port: 9090}},
			want:     []string{"-host1:n-aaaa:8080"}},
		{name: "adopt: not before ours is held", migrate: Migration{Adopt: true, Hostname: "host1"},
			records: []*record{rec("aaaa", 0, "node1:n-aaaa:8080")}, foreign: []string{"host1:n-aaaa:8080"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:8080", Address: "10.0.0.5", Port: 8080}}, want: []string{"+node1:n-aaaa:8080@aaaa"}},
		{name: "cleanup keeps a failed container's registration only with on-success", migrate: Migration{Cleanup: true, Hostname: "host1"},
			records: []*record{with(rec("aaaa", 0), exited(1))}, foreign: []string{"host1:n-aaaa:80"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:80"}}, want: []string{"-host1:n-aaaa:80"}},
		{name: "cleanup removes this host's gliderlabs leftovers that no running container accounts for",
			migrate: Migration{Adopt: true, Cleanup: true, Hostname: "host1"},
			records: []*record{
				with(rec("aaaa", 0), func(r *record) { r.container.Ports = []desired.Port{{Port: 80, Proto: "tcp"}} }),
				with(rec("bbbb", 0), died),
			},
			foreign: []string{"host1:n-aaaa:80", "host1:n-aaaa:81", "host1:n-bbbb:80", "host1:gone:53:udp", "host2:gone:80"},
			unmarked: []desired.Service{{ID: "host1:n-aaaa:80"}, {ID: "host1:n-aaaa:81"}, {ID: "host1:n-bbbb:80"},
				{ID: "host1:gone:53:udp"}, {ID: "host2:gone:80"}},
			want: []string{"-host1:gone:53:udp", "-host1:n-aaaa:81", "-host1:n-bbbb:80"}},
		{name: "cleanup waits while a container is not inspected", migrate: Migration{Cleanup: true, Hostname: "host1"},
			records: []*record{{id: "cccc"}}, foreign: []string{"host1:gone:80"}, unmarked: []desired.Service{{ID: "host1:gone:80"}}},
		{name: "host drain: every running container is deregistered", host: spot,
			records: []*record{rec("aaaa", 0, "web1"), rec("bbbb", 0, "web2", "web3")},
			held:    []desired.Service{held("web1", "aaaa"), held("web2", "bbbb"), held("web3", "bbbb")}, want: []string{"-web1", "-web2", "-web3"}},
		{name: "host drain: a new container is kept out", host: spot, records: []*record{rec("aaaa", 0, "web1"), rec("cccc", 9, "web4")},
			held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "host drain in maintenance: what is held goes into maintenance saying why; new ones stay out", host: spot, drain: DrainMaintenance,
			records: []*record{rec("aaaa", 0, "web1"), rec("cccc", 9, "web4")}, held: []desired.Service{held("web1", "aaaa")},
			want: []string{"+web1@aaaa maint"}, note: hostDrainNote(spot)},
		{name: "host drain in maintenance: once in maintenance nothing is written", host: spot, drain: DrainMaintenance,
			records: []*record{rec("aaaa", 0, "web1")}, held: []desired.Service{hostMaint("web1", "aaaa")}},
		{name: "host drain in maintenance: a new container that is stopped is not registered either", host: spot, drain: DrainMaintenance,
			records: []*record{with(rec("cccc", 9, "web4"), killed("9"))}},
		{name: "host drain in maintenance: a container already stopping keeps its own note", host: spot, drain: DrainMaintenance,
			records: []*record{with(rec("aaaa", 0, "web1"), killed("15"))}, held: []desired.Service{held("web1", "aaaa")},
			want: []string{"+web1@aaaa maint"}, note: drainNote(t0)},
		{name: "host drain in maintenance: an operator's maintenance is not written over", host: spot, drain: DrainMaintenance,
			records: []*record{rec("aaaa", 0, "web1")},
			held:    []desired.Service{with2(held("web1", "aaaa"), func(s *desired.Service) { s.Maintenance = "kernel upgrade" })}},
		{name: "host drain: a failed container is not kept (on-success)", host: spot, keep: true,
			records: []*record{with(rec("aaaa", 0, "web1"), exited(1))}, held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "host drain: what a container not yet inspected holds goes too", host: spot,
			records: []*record{{id: "aaaa"}}, held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "host drain in maintenance: what a container not yet inspected holds goes into maintenance, without an inspect",
			host: spot, drain: DrainMaintenance, records: []*record{{id: "aaaa"}}, held: []desired.Service{held("web1", "aaaa")}, want: []string{"!web1"}},
		{name: "host drain in maintenance: once it is, nothing more", host: spot, drain: DrainMaintenance,
			records: []*record{{id: "aaaa"}}, held: []desired.Service{hostMaint("web1", "aaaa")}},
		{name: "host drain: a foreign service is never touched", host: spot, records: []*record{rec("aaaa", 0, "web1")},
			foreign: []string{"hand-made"}, held: []desired.Service{held("web1", "aaaa")}, want: []string{"-web1"}},
		{name: "host drain lifted: maintenance is lifted by starting over", drain: DrainMaintenance,
			records: []*record{rec("aaaa", 0, "web1")}, held: []desired.Service{hostMaint("web1", "aaaa")}, want: []string{"-web1", "+web1@aaaa"}},
		{name: "a service out of the mesh loses its sidecar: registered anew (Consul keeps a sidecar otherwise)",
			records: []*record{rec("aaaa", 0, "web1")},
			held:    []desired.Service{with2(held("web1", "aaaa"), func(s *desired.Service) { s.Connect = &desired.Connect{Address: "10.0.0.5", Port: 21000} })},
			want:    []string{"-web1", "+web1@aaaa"}},
		{name: "agent restarted: everything registered again", records: []*record{rec("aaaa", 0, "web1"), rec("bbbb", 0, "web2")},
			want: []string{"+web1@aaaa", "+web2@bbbb"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := planInput{records: map[string]*record{}, held: map[string]desired.Service{}, foreign: map[string]bool{},
				mirrored: tc.mirrored, drain: tc.drain, keepFailed: tc.keep, unmarked: map[string]desired.Service{}, migrate: tc.migrate,
				hostDrain: tc.host}
			for _, g := range tc.unmarked {
				in.unmarked[g.ID] = g
			}
			for _, r := range tc.records {
				in.records[r.id] = r
			}
			for _, s := range tc.held {
				in.held[s.ID] = s
			}
			for _, f := range tc.foreign {
				in.foreign[f] = true
			}
			p := makePlan(in)
			if got := planWrites(p); !slices.Equal(got, tc.want) {
				t.Errorf("plan = %q, want %q", got, tc.want)
			}
			for _, s := range p.register {
				if tc.note != "" && s.Maintenance != tc.note {
					t.Errorf("%s registered with the note %q, want %q", s.ID, s.Maintenance, tc.note)
				}
			}
			if tc.host != "" {
				for id, r := range in.records {
					if r.running() && p.draining[id] == "" {
						t.Errorf("%s runs on a host that is going and is not draining", id)
					}
				}
			}
			for id, word := range tc.clashes {
				if len(p.clashes[id]) != 1 || !strings.Contains(p.clashes[id][0].Message, word) {
					t.Errorf("clash of %s = %v, want one naming %q", id, p.clashes[id], word)
				}
			}
			for id, cs := range p.clashes {
				if _, ok := tc.clashes[id]; !ok {
					t.Errorf("unexpected clash for %s: %v", id, cs)
				}
			}
		})
	}
}

func planWrites(p plan) []string {
	var out []string
	for _, sid := range p.deregister {
		out = append(out, "-"+sid)
	}
	for _, s := range p.register {
		w := "+" + s.ID + "@" + s.ContainerID
		if s.Maintenance != "" {
			w += " maint"
		}
		out = append(out, w)
	}
	for _, m := range p.mirrors {
		out = append(out, "~"+m.checkID+"="+m.state.Status)
	}
	for _, m := range p.maintain {
		out = append(out, "!"+m.id)
	}
	return out
}

// The plan depends on the records, never on map order: many containers after one ID give one answer.
func TestPlanIsDeterministic(t *testing.T) {
	in := planInput{records: map[string]*record{}, held: map[string]desired.Service{}}
	for i, id := range []string{"e5", "a1", "c3", "b2", "d4"} {
		in.records[id] = rec(id, i%2, "shared", "own-"+id)
	}
	first := planWrites(makePlan(in))
	for range 50 {
		if got := planWrites(makePlan(in)); !slices.Equal(got, first) {
			t.Fatalf("plan changed between runs:\n%q\n%q", first, got)
		}
	}
	// c3, d4 and e5 started first; c3 has the lowest ID of them.
	if !slices.Contains(first, "+shared@c3") {
		t.Errorf("shared ID should go to c3: %q", first)
	}
}

func with2(s desired.Service, f func(*desired.Service)) desired.Service { f(&s); return s }

// A registration over one the agent holds under the same ID (changed, or gliderlabs's being taken
// over) says so, for the adapter to carry the checks' statuses over; a new one does not.
func TestPlanReplaces(t *testing.T) {
	changed := held("web1", "a1")
	changed.Tags = []string{"old"}
	in := planInput{
		records:  map[string]*record{"a1": rec("a1", 0, "web1", "web2", "host1:n-a1:80")},
		held:     map[string]desired.Service{"web1": changed},
		unmarked: map[string]desired.Service{"host1:n-a1:80": {ID: "host1:n-a1:80", Name: "web", Address: "10.0.0.5", Port: 8080}},
		foreign:  map[string]bool{"host1:n-a1:80": true},
		migrate:  Migration{Adopt: true, Hostname: "host1"},
	}
	in.records["a1"].services[2].ID = "host1:n-a1:80"
	port80(in.records["a1"])
	p := makePlan(in)
	if got := planWrites(p); !slices.Contains(got, "+web1@a1") || !slices.Contains(got, "+web2@a1") {
		t.Fatalf("plan %q", got)
	}
	if !p.replaces["web1"] || p.replaces["web2"] {
		t.Errorf("replaces %v: want web1 (held, changed), not web2 (new)", p.replaces)
	}
	if !slices.Contains(planWrites(p), "+host1:n-a1:80@a1") || !p.replaces["host1:n-a1:80"] {
		t.Errorf("gliderlabs's host1:n-a1:80 taken over without replaces: %v", p.replaces)
	}
}

// A container refused an unmarked ID is told what would change that: -migrate-gliderlabs only for
// gliderlabs's own ID for it, and with adopting on, how to free an ID that is not.
func TestPlanForeignHints(t *testing.T) {
	tests := []struct {
		name, sid string
		adopt     bool
		want      []string
		not       []string
	}{
		{name: "gliderlabs's ID, adopting off", sid: "host1:n-aaaa:80", want: []string{"does not own", "-migrate-gliderlabs takes it over"}},
		{name: "custom ID, adopting off", sid: "vault", want: []string{"does not own"}, not: []string{"-migrate-gliderlabs", "deregister"}},
		{name: "another container's gliderlabs ID, adopting on", sid: "host1:n-bbbb:80", adopt: true,
			want: []string{"not taken over", "another container"}, not: []string{"deregister"}},
		{name: "custom ID, adopting on", sid: "vault", adopt: true,
			want: []string{"not taken over", "host1:n-aaaa:<port>", `consul services deregister -id="vault"`}, not: []string{"-migrate-gliderlabs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := planInput{records: map[string]*record{"aaaa": with(rec("aaaa", 0, tc.sid), port80)},
				foreign: map[string]bool{tc.sid: true}, unmarked: map[string]desired.Service{tc.sid: {ID: tc.sid, Address: "10.0.0.5", Port: 8080}},
				migrate: Migration{Adopt: tc.adopt, Hostname: "host1"}}
			p := makePlan(in)
			if len(p.register)+len(p.deregister) != 0 || len(p.clashes["aaaa"]) != 1 {
				t.Fatalf("plan %q, clashes %v", planWrites(p), p.clashes)
			}
			msg := p.clashes["aaaa"][0].Message
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(msg, w) {
					t.Errorf("%q says %q", msg, w)
				}
			}
		})
	}
}
