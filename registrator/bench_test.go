package registrator

import (
	"fmt"
	"testing"
)

func BenchmarkDesired(b *testing.B) {
	c := web(withLabels("SERVICE_TAGS", "a,b,c", "SERVICE_VERSION", "1.2", "SERVICE_TEAM", "core", "SERVICE_9090_NAME", "metrics"),
		withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 32768}, Port{Port: 9090, Proto: "tcp", HostPort: 32769}))
	for i := range 20 {
		c.Env = append(c.Env, fmt.Sprintf("VAR_%d=value", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := Desired(c, testOpts); len(r.Services) != 2 {
			b.Fatal(r)
		}
	}
}

// BenchmarkPlanUnchanged is what one applier round costs when nothing changed, for a host with n
// containers of two services each: the whole store planned against the ledger, no write.
func BenchmarkPlanUnchanged(b *testing.B) {
	for _, n := range []int{10, 150, 500} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			in := planInput{records: map[string]*record{}, held: map[string]Service{}}
			for i := range n {
				id := fmt.Sprintf("c%04d", i)
				r := rec(id, i, id+":80", id+":443")
				in.records[id] = r
				for _, s := range r.services {
					in.held[s.ID] = s
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if p := makePlan(in); len(p.register)+len(p.deregister) != 0 {
					b.Fatal(planWrites(p))
				}
			}
		})
	}
}
