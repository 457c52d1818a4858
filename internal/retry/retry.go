// Package retry holds the one backoff policy the daemon uses for everything it waits on: Docker, Consul
// and the AWS endpoints.
package retry

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff is an exponential backoff from 100ms to max, with jitter, that never gives up.
func Backoff(max time.Duration) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = max
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}
