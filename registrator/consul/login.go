package consul

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
)

// iamLogin gets the daemon's Consul token by logging in through an aws-iam auth method with its AWS
// credentials (on ECS the task role): no static secret in the deployment. The token is used until a
// third of its lifetime is left, or until Consul says it is gone (then the login is done again), and
// it is logged out on a clean exit.
type iamLogin struct {
	method   string
	serverID string // the auth method's ServerIDHeaderValue, when it requires one
	creds    aws.CredentialsProvider
	consul   *api.Client // without a token: login and logout authenticate themselves

	mu      sync.Mutex
	token   string
	refresh time.Time // zero: until Consul says it is gone
	region  string    // the region the request is signed for, found at the first login
}

// IAM login's wire format, as Consul's aws-iam auth method reads it: a signed STS GetCallerIdentity
// request, which the Consul servers send to STS themselves.
const (
	stsBody           = "Action=GetCallerIdentity&Version=2011-06-15"
	iamServerIDHeader = "X-Consul-IAM-ServerID"
)

// current returns the token, logging in first when there is none or it is due for renewal.
func (l *iamLogin) current(ctx context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token != "" && (l.refresh.IsZero() || time.Now().Before(l.refresh)) {
		return l.token, nil
	}
	data, err := l.loginData(ctx)
	if err != nil {
		return "", fmt.Errorf("consul aws-iam login: %w", err)
	}
	tok, _, err := l.consul.ACL().Login(&api.ACLLoginParams{AuthMethod: l.method, BearerToken: data},
		(&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("consul aws-iam login with auth method %q: %w", l.method, err)
	}
	l.token, l.refresh = tok.SecretID, time.Time{}
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

// logout gives the token back.
func (l *iamLogin) logout(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token == "" {
		return nil
	}
	_, err := l.consul.ACL().Logout((&api.WriteOptions{Token: l.token}).WithContext(ctx))
	l.token = ""
	return err
}

// loginData is the bearer token: a GetCallerIdentity request signed with the daemon's credentials
// for its region (ecsmeta.Region: the environment's, else instance metadata's), for the STS
// endpoint the auth method trusts (AWS_ENDPOINT_URL_STS, else the region's).
func (l *iamLogin) loginData(ctx context.Context) (string, error) {
	if l.region == "" {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		region, err := ecsmeta.Region(rctx, ecsmeta.NewIMDS())
		cancel()
		if err != nil {
			return "", err
		}
		l.region = region // the host does not move
	}
	region := l.region
	// Consul's servers send this request to STS, not this host: that the host is IPv6-only does not
	// make it dual-stack, AWS_USE_DUALSTACK_ENDPOINT does. Unless the auth method sets an
	// STSEndpoint, Consul accepts only sts.*.amazonaws.com and sts-fips.*.amazonaws.com (its
	// internal/iamauth/token.go, validateSTSHostname): not the dual-stack or China endpoints.
	endpoint, err := ecsmeta.ServiceEndpoint("sts", region, false)
	if err != nil {
		return "", err
	}
	endpoint = strings.TrimSuffix(endpoint, "/") + "/"
	creds, err := l.creds.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("aws credentials: %w", err)
	}
	header := http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}}
	if l.serverID != "" {
		header.Set(iamServerIDHeader, l.serverID)
	}
	req, err := ecsmeta.SignedRequest(ctx, creds, http.MethodPost, endpoint, "sts", region, []byte(stsBody), header)
	if err != nil {
		return "", err
	}
	headers, err := json.Marshal(req.Header)
	if err != nil {
		return "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	data, err := json.Marshal(map[string]string{
		"iam_http_request_method": req.Method,
		"iam_request_url":         b64([]byte(req.URL.String())),
		"iam_request_headers":     b64(headers),
		"iam_request_body":        b64([]byte(stsBody)),
	})
	return string(data), err
}
