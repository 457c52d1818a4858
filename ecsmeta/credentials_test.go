package ecsmeta

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Task role credentials are fetched again five minutes before they expire, not when they have:
// a request is never signed with credentials that run out while it is in flight.
func TestCredentialsRefreshBeforeExpiry(t *testing.T) {
	var fetched atomic.Int32
	lifetimes := []time.Duration{4 * time.Minute, 6 * time.Minute, time.Hour}
	creds := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		n := int(fetched.Add(1)) - 1
		_, _ = w.Write([]byte(`{"AccessKeyId":"ASIA` + string(rune('A'+n)) + `","SecretAccessKey":"secret","Token":"token",` +
			`"Expiration":"` + time.Now().Add(lifetimes[min(n, len(lifetimes)-1)]).UTC().Format(time.RFC3339) + `"}`))
	})
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", creds.URL+"/creds")
	p := Credentials()
	var keys []string
	for range 3 {
		c, err := p.Retrieve(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, c.AccessKeyID)
	}
	// The first credentials (4 minutes left) are used for the request that fetched them and then
	// replaced; the second (6 minutes left) are kept.
	if got := strings.Join(keys, " "); got != "ASIAA ASIAB ASIAB" || fetched.Load() != 2 {
		t.Errorf("credentials used: %s, %d fetches; want ASIAA ASIAB ASIAB from 2 fetches", got, fetched.Load())
	}
}
