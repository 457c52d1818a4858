package consul

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// iamLogin gets the daemon's Consul token by logging in through an aws-iam auth method with its AWS
// credentials (on ECS the task role): no static secret in the deployment. The token is used until a
// third of its lifetime is left, or until Consul says it is gone (then the login is done again), and
// it is logged out on a clean exit.
type iamLogin struct {
	IAMLogin
	consul *api.Client // without a token: login and logout authenticate themselves

	mu      sync.Mutex
	token   string
	refresh time.Time // zero: until Consul says it is gone
	gen     uint64    // logins done
}

func (l *iamLogin) generation() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

// current returns the token, logging in first when there is none or it is due for renewal.
func (l *iamLogin) current(ctx context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token != "" && (l.refresh.IsZero() || time.Now().Before(l.refresh)) {
		return l.token, nil
	}
	tok, err := l.Login(ctx, l.consul)
	if err != nil {
		return "", err
	}
	l.token, l.refresh = tok.SecretID, time.Time{}
	l.gen++
	if tok.ExpirationTime != nil {
		l.refresh = time.Now().Add(2 * time.Until(*tok.ExpirationTime) / 3)
	}
	return l.token, nil
}

// forget drops a token Consul no longer knows; the next request logs in again.
func (l *iamLogin) forget(token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token == token {
		l.token = ""
	}
}
