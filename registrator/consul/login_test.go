package consul

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// iamConsul is a stand-in for a Consul server's aws-iam auth method: /v1/acl/login takes the bearer
// token, sends the signed GetCallerIdentity request in it to the URL it was signed for, as Consul does
// when the method has no STSEndpoint (the Host header kept), and gives a token when STS answers. The
// request reaches the fake STS whatever its host; the host is recorded.
type iamConsul struct {
	*httptest.Server
	sts   *url.URL
	mu    sync.Mutex
	hosts []string // the hosts the STS requests were sent to
	auth  []string // their Authorization headers
}

func startIAMConsul(t *testing.T) *iamConsul {
	sts := testenv.StartFakeSTS(t, "arn:aws:sts::123456789012:assumed-role/ecs-registrator/task-1", "123456789012")
	c := &iamConsul{}
	c.sts, _ = url.Parse(sts.URL)
	toSTS := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.hosts = append(c.hosts, r.URL.Host)
		c.auth = append(c.auth, r.Header.Get("Authorization"))
		c.mu.Unlock()
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = c.sts.Scheme, c.sts.Host
		return http.DefaultTransport.RoundTrip(r)
	})}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ AuthMethod, BearerToken string }
		var tok struct {
			Method  string `json:"iam_http_request_method"`
			URL     string `json:"iam_request_url"`
			Headers string `json:"iam_request_headers"`
			Body    string `json:"iam_request_body"`
		}
		if r.URL.Path != "/v1/acl/login" || json.NewDecoder(r.Body).Decode(&in) != nil || json.Unmarshal([]byte(in.BearerToken), &tok) != nil {
			http.Error(w, "bad login", http.StatusBadRequest)
			return
		}
		dec := func(s string) string { b, _ := base64.StdEncoding.DecodeString(s); return string(b) }
		var header http.Header
		_ = json.Unmarshal([]byte(dec(tok.Headers)), &header)
		req, err := http.NewRequestWithContext(r.Context(), tok.Method, dec(tok.URL), strings.NewReader(dec(tok.Body)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		req.Header = header
		resp, err := toSTS.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
			http.Error(w, "STS: "+string(b), http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, `{"AccessorID":"a1","SecretID":"token-1"}`)
	}))
	t.Cleanup(c.Close)
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeRegionIMDS serves IMDSv2's token and placement/region only.
func fakeRegionIMDS(t *testing.T, region string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
			_, _ = io.WriteString(w, "token")
		case r.URL.Path == "/latest/meta-data/placement/region" && r.Header.Get("X-Aws-Ec2-Metadata-Token") == "token":
			_, _ = io.WriteString(w, region)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The login's GetCallerIdentity request is signed for the daemon's region, from the environment or
// else instance metadata, and for the STS endpoint the endpoint table gives for it; Consul sends it
// there. No region anywhere is an error that says so, not a guess.
func TestIAMLoginAtResolvedSTSEndpoint(t *testing.T) {
	for _, c := range []struct {
		name            string
		env             map[string]string
		imdsRegion      string // served by instance metadata; "": instance metadata is disabled
		region          string // the region the table is asked for
		dualStack, fips bool
	}{
		{"commercial", map[string]string{"AWS_REGION": "eu-central-1"}, "", "eu-central-1", false, false},
		{"region from instance metadata", nil, "ap-southeast-2", "ap-southeast-2", false, false},
		{"AWS_DEFAULT_REGION over instance metadata", map[string]string{"AWS_DEFAULT_REGION": "us-east-2"}, "ap-southeast-2", "us-east-2", false, false},
		{"China", map[string]string{"AWS_REGION": "cn-north-1"}, "", "cn-north-1", false, false},
		{"GovCloud FIPS", map[string]string{"AWS_REGION": "us-gov-west-1", "AWS_USE_FIPS_ENDPOINT": "true"}, "", "us-gov-west-1", false, true},
		{"commercial FIPS", map[string]string{"AWS_USE_FIPS_ENDPOINT": "true"}, "us-west-2", "us-west-2", false, true},
		{"dual-stack", map[string]string{"AWS_REGION": "eu-west-1", "AWS_USE_DUALSTACK_ENDPOINT": "true"}, "", "eu-west-1", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			setLoginEnv(t, c.env, c.imdsRegion)
			want, err := ecsmeta.Endpoint("sts", c.region, c.dualStack, c.fips)
			if err != nil {
				t.Fatal(err)
			}
			wantURL, _ := url.Parse(want)
			consul := startIAMConsul(t)
			tok, err := newTestLogin(t, consul).current(t.Context())
			if err != nil || tok != "token-1" {
				t.Fatalf("login: %q, %v", tok, err)
			}
			if len(consul.hosts) != 1 || consul.hosts[0] != wantURL.Host {
				t.Errorf("STS requests went to %q; want %q", consul.hosts, wantURL.Host)
			}
			if scope := "/" + c.region + "/sts/aws4_request"; !strings.Contains(consul.auth[0], scope) {
				t.Errorf("signed as %q; want the scope %s", consul.auth[0], scope)
			}
		})
	}

	t.Run("explicit endpoint", func(t *testing.T) {
		consul := startIAMConsul(t)
		setLoginEnv(t, map[string]string{"AWS_REGION": "eu-west-1", "AWS_USE_DUALSTACK_ENDPOINT": "true",
			"AWS_ENDPOINT_URL_STS": "https://sts.vpce.example"}, "")
		if _, err := newTestLogin(t, consul).current(t.Context()); err != nil {
			t.Fatal(err)
		}
		if len(consul.hosts) != 1 || consul.hosts[0] != "sts.vpce.example" {
			t.Errorf("STS requests went to %q; want sts.vpce.example", consul.hosts)
		}
	})

	t.Run("no region", func(t *testing.T) {
		consul := startIAMConsul(t)
		setLoginEnv(t, nil, "")
		tok, err := newTestLogin(t, consul).current(t.Context())
		if err == nil || !strings.Contains(err.Error(), "no AWS region") {
			t.Errorf("login without a region: %q, %v; want an error naming the missing region", tok, err)
		}
		if len(consul.hosts) != 0 {
			t.Errorf("STS was asked (%q) without a region", consul.hosts)
		}
	})
}

// setLoginEnv sets env and clears the other AWS variables a login reads; instance metadata serves
// imdsRegion, or is disabled when it is "".
func setLoginEnv(t *testing.T, env map[string]string, imdsRegion string) {
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL",
		"AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT"} {
		t.Setenv(k, env[k])
	}
	if imdsRegion == "" {
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		return
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fakeRegionIMDS(t, imdsRegion))
}

func newTestLogin(t *testing.T, consul *iamConsul) *iamLogin {
	c, err := api.NewClient(&api.Config{Address: strings.TrimPrefix(consul.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	return &iamLogin{IAMLogin: IAMLogin{Method: "aws", ServerID: "consul.test",
		Creds: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "")}, consul: c}
}
