package registrator_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// 20 pairs of containers asking for the same SERVICE_ID, each pair started at the same instant:
// exactly one of each pair holds the ID (the one Docker started first, ties by container ID), the
// other shows the clash, and takes the ID over within 2 s of the holder's removal.
func TestServiceIDClashPairs(t *testing.T) {
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t))
	e.waitReady(t)
	const pairs = 20
	type pair struct {
		sid  string
		ids  [2]string
		hold int // index in ids of the expected holder
	}
	ps := make([]pair, pairs)
	for i := range ps {
		ps[i].sid = unique(t, "clash")
		for j := range 2 {
			ps[i].ids[j] = testenv.Create(t, d, testenv.Workload{Name: fmt.Sprintf("%s-%d", ps[i].sid, j), TCP: []int{8080}, Publish: true,
				Labels: map[string]string{"SERVICE_NAME": "clash", "SERVICE_ID": ps[i].sid}})
		}
	}
	var wg sync.WaitGroup
	for i := range ps {
		gate := make(chan struct{})
		for _, id := range ps[i].ids {
			wg.Go(func() {
				<-gate
				if err := d.ContainerStart(t.Context(), id, container.StartOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
		close(gate)
	}
	wg.Wait()
	for i := range ps {
		a, b := testenv.Inspect(t, d, ps[i].ids[0]).State.StartedAt, testenv.Inspect(t, d, ps[i].ids[1]).State.StartedAt
		first := func(x, y string) bool {
			ta, _ := time.Parse(time.RFC3339Nano, x)
			tb, _ := time.Parse(time.RFC3339Nano, y)
			return ta.Before(tb)
		}
		switch {
		case first(a, b):
			ps[i].hold = 0
		case first(b, a):
			ps[i].hold = 1
		case ps[i].ids[1] < ps[i].ids[0]:
			ps[i].hold = 1
		}
	}

	holder := func(sid string) string {
		s, _, err := e.api.Agent().Service(sid, nil)
		if err != nil || s == nil {
			return ""
		}
		return s.Meta[desired.MetaContainerID]
	}
	clashShown := func(id, sid string) bool {
		probs, _ := e.problems(id)
		for _, p := range probs {
			if p.Key == "SERVICE_ID" && strings.Contains(p.Message, sid) {
				return true
			}
		}
		return false
	}
	for _, p := range ps {
		holds, waits := p.ids[p.hold], p.ids[1-p.hold]
		testenv.EventuallyExplain(t, 10*time.Second, func() bool { return holder(p.sid) == holds && clashShown(waits, p.sid) },
			func() string {
				return fmt.Sprintf("%s: held by %.12s, want %.12s (started first); clash shown on the other: %v", p.sid, holder(p.sid), holds,
					clashShown(waits, p.sid))
			})
		if probs, _ := e.problems(holds); len(probs) != 0 {
			t.Errorf("%s: the holder shows %v", p.sid, probs)
		}
	}

	var worst time.Duration
	for _, p := range ps {
		holds, waits := p.ids[p.hold], p.ids[1-p.hold]
		if err := d.ContainerRemove(t.Context(), holds, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		took := testenv.EventuallyExplain(t, 2*time.Second, func() bool { return holder(p.sid) == waits && !clashShown(waits, p.sid) },
			func() string {
				return fmt.Sprintf("%s: held by %.12s 2s after the holder's removal, want %.12s", p.sid, holder(p.sid), waits)
			})
		worst = max(worst, took)
	}
	t.Logf("hand-overs took at most %v after docker rm -f returned", worst)
}
