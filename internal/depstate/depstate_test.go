package depstate

import (
	"errors"
	"testing"
)

func TestRecord(t *testing.T) {
	t.Parallel()
	var d State
	if st := d.Get(); st.Used || st.Up {
		t.Fatalf("zero state %+v", st)
	}
	boom := errors.New("boom")
	steps := []struct {
		err            error
		changed, first bool
		up             bool
		lastErr        string
	}{
		{boom, true, true, false, "boom"},
		{boom, false, false, false, "boom"},
		{nil, true, false, true, "boom"}, // the last error stays for the status page
		{nil, false, false, true, "boom"},
		{errors.New("again"), true, false, false, "again"},
	}
	var since = d.Get().Since
	for i, s := range steps {
		st, changed, first := d.Record(s.err)
		if changed != s.changed || first != s.first || st.Up != s.up || st.LastError != s.lastErr || !st.Used {
			t.Fatalf("step %d: %+v changed %v first %v", i, st, changed, first)
		}
		if !changed && !st.Since.Equal(since) {
			t.Errorf("step %d: Since moved without a change", i)
		}
		since = st.Since
		if d.Get() != st {
			t.Errorf("step %d: Get %+v, Record %+v", i, d.Get(), st)
		}
	}
}
