package registrator

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestQueueMergesDuplicates(t *testing.T) {
	t.Parallel()
	q := newQueue()
	for _, k := range []string{"a", "b", "a", "a", "c", "b"} {
		q.add(k)
	}
	var got []string
	for q.len() > 0 {
		k, _ := q.get()
		got = append(got, k)
		q.done(k)
	}
	if want := "a b c"; join(got) != want {
		t.Fatalf("order = %q, want %q", join(got), want)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func TestQueueRequeuesKeyAddedWhileProcessing(t *testing.T) {
	t.Parallel()
	q := newQueue()
	q.add("a")
	k, _ := q.get()
	q.add("a") // an event during reconcile must not be lost...
	if q.len() != 0 {
		t.Fatal("a key being processed was handed out to a second worker")
	}
	q.done(k) // ...it comes back once the first handling is done
	if k2, ok := q.get(); !ok || k2 != "a" {
		t.Fatalf("get = %q %v, want a", k2, ok)
	}
}

func TestQueueNeverRunsOneKeyTwiceAtOnce(t *testing.T) {
	t.Parallel()
	q := newQueue()
	var wg sync.WaitGroup
	var inFlight, maxInFlight, handled atomic.Int32
	for range 4 {
		wg.Go(func() {
			for {
				k, ok := q.get()
				if !ok {
					return
				}
				if n := inFlight.Add(1); n > maxInFlight.Load() {
					maxInFlight.Store(n)
				}
				handled.Add(1)
				inFlight.Add(-1)
				q.done(k)
			}
		})
	}
	for range 1000 {
		q.add("same")
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.len() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	q.shutDown()
	wg.Wait()
	if maxInFlight.Load() > 1 {
		t.Fatalf("one key was handled by %d workers at once", maxInFlight.Load())
	}
	if handled.Load() == 0 {
		t.Fatal("nothing handled")
	}
}

func TestQueueRetryBacksOffPerKey(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		q := newQueue()
		var delays []time.Duration
		for range 5 {
			delays = append(delays, q.retry("a", 500*time.Millisecond))
		}
		want := []time.Duration{100, 200, 400, 500, 500}
		for i := range want {
			if delays[i] != want[i]*time.Millisecond {
				t.Fatalf("delays = %v, want %v ms", delays, want)
			}
		}
		time.Sleep(499 * time.Millisecond)
		if q.len() != 0 {
			t.Fatal("retried before its delay")
		}
		time.Sleep(2 * time.Millisecond)
		if q.len() != 1 {
			t.Fatal("not retried after its delay")
		}
		q.forget("a")
		if d := q.retry("a", time.Second); d != 100*time.Millisecond {
			t.Fatalf("after forget, delay = %v, want 100ms", d)
		}
		q.shutDown()
	})
}

func TestQueueShutdownWakesGet(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		q := newQueue()
		done := make(chan bool)
		go func() {
			_, ok := q.get()
			done <- ok
		}()
		synctest.Wait()
		q.shutDown()
		if <-done {
			t.Fatal("get returned a key after shutdown")
		}
		q.add("late")
		if q.len() != 0 {
			t.Fatal("add after shutdown queued a key")
		}
	})
}

func TestQueueRetryNowSkipsGrownDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue()
		for range 8 {
			q.retry("a", 10*time.Second) // a delay grown to 10 s during an outage
		}
		q.retryNow()
		if q.len() != 1 {
			t.Fatalf("%d keys waiting right after retryNow, want 1", q.len())
		}
		if key, _ := q.get(); key != "a" {
			t.Fatalf("got %q", key)
		}
		q.done("a")
		if d := q.retry("a", 10*time.Second); d != 100*time.Millisecond {
			t.Fatalf("delay after retryNow %v, want the first step again", d)
		}
		q.shutDown()
	})
}

func TestQueueMarkPassesOnKeysQueuedBeforeIt(t *testing.T) {
	t.Parallel()
	q := newQueue()
	if q.passed() {
		t.Fatal("passed before any mark")
	}
	q.add("a")
	q.add("b")
	k, _ := q.get() // a in hand
	q.add("a")      // and added again while in hand
	q.mark()
	q.add("c") // after the mark: not waited for
	q.done(k)  // a's old handling is not enough: it was added again before the mark
	if q.passed() {
		t.Fatal("passed while a and b wait")
	}
	for _, want := range []string{"b", "c"} {
		if k, _ := q.get(); k != want {
			t.Fatalf("got %q, want %q", k, want)
		}
		q.done(want)
	}
	if q.passed() {
		t.Fatal("passed while a waits")
	}
	k, _ = q.get()
	q.add("c")
	if q.passed() {
		t.Fatal("passed while a is in hand")
	}
	q.done(k)
	if !q.passed() {
		t.Fatal("not passed once a and b are handled, with c waiting again")
	}
}
