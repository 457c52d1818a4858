package ecsmeta

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
)

// apiTask is what the ECS API adds: the service from the task's group, and its tags.
type apiTask struct {
	service string
	tags    map[string]string
}

// ecsAPI calls DescribeTasks over the ECS API's JSON 1.1 protocol, signed with the SDK's SigV4 signer.
//
// Not the SDK's service/ecs client and config loader: linking them costs about 8 MB of resident
// memory (their package initialisation alone allocates a megabyte) in a daemon that runs on every
// host and calls one operation, off by default. Credentials come from the chain an ECS daemon task
// has: the environment, the task role (AWS_CONTAINER_CREDENTIALS_*), else the instance role. The
// endpoint is ServiceEndpoint's: AWS_ENDPOINT_URL_ECS (or AWS_ENDPOINT_URL), else the region's,
// dual-stack on an IPv6-only host or with AWS_USE_DUALSTACK_ENDPOINT, FIPS with AWS_USE_FIPS_ENDPOINT.
type ecsAPI struct {
	once  sync.Once
	creds aws.CredentialsProvider
	http  *http.Client // set before the first call, or a default
	// ipv6Only reports whether the host has no IPv4 route, so that only a dual-stack endpoint
	// answers; nil: it has one.
	ipv6Only func() bool
}

func (a *ecsAPI) init() {
	a.once.Do(func() {
		if a.http == nil {
			a.http = &http.Client{Timeout: 10 * time.Second}
		}
		a.creds = Credentials()
	})
}

// credentialsExpiryWindow is how long before they expire cached credentials are fetched again (the
// SDK's config loader gives its container credentials provider's cache the same window): they are
// used only while more than that is left of them, so that no request is signed with credentials
// that expire in flight.
const credentialsExpiryWindow = 5 * time.Minute

// Credentials are the daemon's AWS credentials, cached and fetched again credentialsExpiryWindow
// before they expire: the environment's keys, else the ECS task role
// (AWS_CONTAINER_CREDENTIALS_*), else the instance role.
func Credentials() aws.CredentialsProvider {
	return aws.NewCredentialsCache(credentialChain(), func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = credentialsExpiryWindow
	})
}

// credentialChain is the first source the environment names, else the instance role.
func credentialChain() aws.CredentialsProvider {
	if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		return credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN"))
	}
	endpoint := os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
	if rel := os.Getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); rel != "" {
		endpoint = "http://169.254.170.2" + rel
	} else if endpoint != "" && !trustedCredentialsURI(endpoint) {
		// As the SDK: the role's credentials, and the token, travel in the clear only to the host
		// itself or the ECS agent's addresses.
		return credentialsError{fmt.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI %q: plain http only to loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23", endpoint)}
	}
	if endpoint != "" {
		return endpointcreds.New(endpoint, func(o *endpointcreds.Options) {
			o.AuthorizationToken = os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
			if f := os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); f != "" {
				o.AuthorizationTokenProvider = endpointcreds.TokenProviderFunc(func() (string, error) {
					b, err := os.ReadFile(f)
					return strings.TrimSpace(string(b)), err
				})
			}
		})
	}
	return ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = NewIMDS() })
}

// trustedCredentialsURI reports whether a full credentials URI may be used: https anywhere, plain
// http only to the host itself or the ECS agent's credential addresses.
func trustedCredentialsURI(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	if u.Scheme != "http" {
		return false
	}
	switch host := u.Hostname(); host {
	case "localhost", "169.254.170.2", "169.254.170.23", "fd00:ec2::23":
		return true
	default:
		ip, err := netip.ParseAddr(host)
		return err == nil && ip.IsLoopback()
	}
}

// credentialsError is a provider that only says why there are no credentials.
type credentialsError struct{ err error }

func (c credentialsError) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{}, c.err
}

// describeMany returns the service and tags of up to 100 tasks of one cluster, by task ARN. A task
// the answer lists as a failure (MISSING) is missing from the map, with why in failed.
func (a *ecsAPI) describeMany(ctx context.Context, region, cluster string, arns []string) (map[string]apiTask, map[string]string, error) {
	a.init()
	body, err := json.Marshal(map[string]any{"cluster": cluster, "tasks": arns, "include": []string{"TAGS"}})
	if err != nil {
		return nil, nil, err
	}
	var out struct {
		Failures []struct{ Arn, Reason string }
		Tasks    []struct {
			TaskArn string
			Group   string
			Tags    []struct{ Key, Value string }
		}
	}
	if err := a.call(ctx, region, "DescribeTasks", body, &out); err != nil {
		return nil, nil, fmt.Errorf("ecs DescribeTasks: %w", err)
	}
	res := make(map[string]apiTask, len(out.Tasks))
	for _, t := range out.Tasks {
		at := apiTask{tags: map[string]string{}}
		if svc, ok := strings.CutPrefix(t.Group, "service:"); ok {
			at.service = svc
		}
		for _, tag := range t.Tags {
			if tag.Key != "" {
				at.tags[tag.Key] = tag.Value
			}
		}
		res[t.TaskArn] = at
	}
	failed := map[string]string{}
	for _, f := range out.Failures {
		failed[f.Arn] = f.Reason
	}
	return res, failed, nil
}

// instanceStatus is a container instance's status (ACTIVE, DRAINING, ...) from
// DescribeContainerInstances.
func (a *ecsAPI) instanceStatus(ctx context.Context, region, cluster, arn string) (string, error) {
	a.init()
	body, err := json.Marshal(map[string]any{"cluster": cluster, "containerInstances": []string{arn}})
	if err != nil {
		return "", err
	}
	var out struct {
		ContainerInstances []struct{ ContainerInstanceArn, Status string }
		Failures           []struct{ Arn, Reason string }
	}
	if err := a.call(ctx, region, "DescribeContainerInstances", body, &out); err != nil {
		return "", fmt.Errorf("ecs DescribeContainerInstances: %w", err)
	}
	for _, ci := range out.ContainerInstances {
		if ci.ContainerInstanceArn == arn {
			return ci.Status, nil
		}
	}
	for _, f := range out.Failures {
		return "", fmt.Errorf("ecs DescribeContainerInstances: %s: %s", arn, f.Reason)
	}
	return "", fmt.Errorf("ecs DescribeContainerInstances: %s is not in the answer", arn)
}

// call makes one signed JSON 1.1 request and decodes the answer into out. An error answer becomes
// "<type>: <message>", the exception's type without its namespace.
func (a *ecsAPI) call(ctx context.Context, region, op string, body []byte, out any) error {
	creds, err := a.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	endpoint, err := ServiceEndpoint("ecs", region, a.ipv6Only != nil && a.ipv6Only())
	if err != nil {
		return err
	}
	req, err := SignedRequest(ctx, creds, http.MethodPost, endpoint, "ecs", region, body, http.Header{
		"Content-Type": {"application/x-amz-json-1.1"},
		"X-Amz-Target": {"AmazonEC2ContainerServiceV20141113." + op},
	})
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(b, &e)
		// The error's type, as the SDK reads it: the header, else the body's __type, without a
		// namespace ("aws.ecs#ClusterNotFoundException") or a suffix after ':'.
		kind := cmp.Or(resp.Header.Get("X-Amzn-ErrorType"), e.Type)
		kind, _, _ = strings.Cut(kind, ":")
		kind = kind[strings.LastIndex(kind, "#")+1:]
		if kind == "" {
			return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
		}
		return fmt.Errorf("%s: %s", kind, cmp.Or(e.Message, http.StatusText(resp.StatusCode)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
