package registrator

import (
	"fmt"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// BenchmarkPlanUnchanged is what one applier round costs when nothing changed, for a host with n
// containers of two services each: the whole store planned against the ledger, no write.
func BenchmarkPlanUnchanged(b *testing.B) {
	for _, n := range []int{10, 150, 500} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			in := planInput{records: map[string]*record{}, held: map[string]desired.Service{}}
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
