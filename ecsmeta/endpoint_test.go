package ecsmeta

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The endpoints are the ones the AWS SDK's own endpoint tests expect (aws-sdk-go-v2
// service/ecs/endpoints_test.go and service/sts/endpoints_test.go).
func TestEndpoint(t *testing.T) {
	for _, c := range []struct {
		service, region string
		dualStack, fips bool
		want            string
	}{
		// commercial
		{"ecs", "us-east-1", false, false, "https://ecs.us-east-1.amazonaws.com"},
		{"ecs", "us-east-1", false, true, "https://ecs-fips.us-east-1.amazonaws.com"},
		{"ecs", "us-east-1", true, false, "https://ecs.us-east-1.api.aws"},
		{"ecs", "us-east-1", true, true, "https://ecs-fips.us-east-1.api.aws"},
		{"ecs", "eu-west-1", false, false, "https://ecs.eu-west-1.amazonaws.com"},
		{"sts", "us-west-2", false, false, "https://sts.us-west-2.amazonaws.com"},
		{"sts", "us-west-2", false, true, "https://sts-fips.us-west-2.amazonaws.com"},
		{"sts", "us-east-1", true, false, "https://sts.us-east-1.api.aws"},
		{"sts", "us-east-1", true, true, "https://sts-fips.us-east-1.api.aws"},
		// China
		{"ecs", "cn-north-1", false, false, "https://ecs.cn-north-1.amazonaws.com.cn"},
		{"ecs", "cn-north-1", false, true, "https://ecs-fips.cn-north-1.amazonaws.com.cn"},
		{"ecs", "cn-north-1", true, false, "https://ecs.cn-north-1.api.amazonwebservices.com.cn"},
		{"ecs", "cn-north-1", true, true, "https://ecs-fips.cn-north-1.api.amazonwebservices.com.cn"},
		{"sts", "cn-northwest-1", false, false, "https://sts.cn-northwest-1.amazonaws.com.cn"},
		{"sts", "cn-north-1", true, true, "https://sts-fips.cn-north-1.api.amazonwebservices.com.cn"},
		// GovCloud: its STS endpoints are FIPS already
		{"ecs", "us-gov-west-1", false, false, "https://ecs.us-gov-west-1.amazonaws.com"},
		{"ecs", "us-gov-east-1", false, true, "https://ecs-fips.us-gov-east-1.amazonaws.com"},
		{"ecs", "us-gov-east-1", true, false, "https://ecs.us-gov-east-1.api.aws"},
		{"ecs", "us-gov-east-1", true, true, "https://ecs-fips.us-gov-east-1.api.aws"},
		{"sts", "us-gov-west-1", false, false, "https://sts.us-gov-west-1.amazonaws.com"},
		{"sts", "us-gov-west-1", false, true, "https://sts.us-gov-west-1.amazonaws.com"},
		{"sts", "us-gov-east-1", true, false, "https://sts.us-gov-east-1.api.aws"},
		{"sts", "us-gov-east-1", true, true, "https://sts-fips.us-gov-east-1.api.aws"},
		// ISO
		{"ecs", "us-iso-east-1", false, false, "https://ecs.us-iso-east-1.c2s.ic.gov"},
		{"ecs", "us-iso-east-1", false, true, "https://ecs-fips.us-iso-east-1.c2s.ic.gov"},
		{"sts", "us-iso-west-1", false, false, "https://sts.us-iso-west-1.c2s.ic.gov"},
		{"ecs", "us-isob-east-1", false, false, "https://ecs.us-isob-east-1.sc2s.sgov.gov"},
		{"sts", "us-isob-east-1", false, true, "https://sts-fips.us-isob-east-1.sc2s.sgov.gov"},
	} {
		got, err := Endpoint(c.service, c.region, c.dualStack, c.fips)
		if err != nil || got != c.want {
			t.Errorf("Endpoint(%q, %q, dual-stack %v, FIPS %v) = %q, %v; want %q", c.service, c.region, c.dualStack, c.fips, got, err, c.want)
		}
	}
	for _, c := range []struct{ service, region string }{
		{"ecs", ""}, {"ecs", "us-east-1.evil.example/"}, {"ecs", "US-EAST-1"}, {"sts", "-us-east-1"}, {"s3", "us-east-1"}, {"iam", "us-east-1"},
	} {
		if got, err := Endpoint(c.service, c.region, false, false); err == nil {
			t.Errorf("Endpoint(%q, %q) = %q; want an error", c.service, c.region, got)
		}
	}
}

// An explicit endpoint wins over everything; otherwise the SDK's variables and the caller's
// dual-stack need choose the variant.
func TestServiceEndpoint(t *testing.T) {
	for _, c := range []struct {
		name            string
		env             map[string]string
		service, region string
		ipv6Only        bool
		want            string
	}{
		{"plain", nil, "ecs", "eu-west-1", false, "https://ecs.eu-west-1.amazonaws.com"},
		{"IPv6-only host", nil, "ecs", "eu-west-1", true, "https://ecs.eu-west-1.api.aws"},
		{"dual-stack asked for", map[string]string{"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "sts", "eu-west-1", false, "https://sts.eu-west-1.api.aws"},
		{"dual-stack off", map[string]string{"AWS_USE_DUALSTACK_ENDPOINT": "false"}, "sts", "eu-west-1", false, "https://sts.eu-west-1.amazonaws.com"},
		{"FIPS", map[string]string{"AWS_USE_FIPS_ENDPOINT": "TRUE"}, "ecs", "us-gov-west-1", false, "https://ecs-fips.us-gov-west-1.amazonaws.com"},
		{"FIPS on an IPv6-only host", map[string]string{"AWS_USE_FIPS_ENDPOINT": "true"}, "ecs", "us-east-2", true, "https://ecs-fips.us-east-2.api.aws"},
		{"service's override", map[string]string{"AWS_ENDPOINT_URL_ECS": "https://vpce-1.ecs.example", "AWS_ENDPOINT_URL": "https://all.example",
			"AWS_USE_FIPS_ENDPOINT": "true", "AWS_USE_DUALSTACK_ENDPOINT": "true"}, "ecs", "us-east-1", true, "https://vpce-1.ecs.example"},
		{"global override", map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, "sts", "us-east-1", true, "http://127.0.0.1:4566"},
		{"other service's override", map[string]string{"AWS_ENDPOINT_URL_STS": "https://sts.example"}, "ecs", "cn-north-1", false, "https://ecs.cn-north-1.amazonaws.com.cn"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"AWS_ENDPOINT_URL_ECS", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"} {
				t.Setenv(k, c.env[k])
			}
			if got, err := ServiceEndpoint(c.service, c.region, c.ipv6Only); err != nil || got != c.want {
				t.Errorf("ServiceEndpoint(%q, %q, %v) = %q, %v; want %q", c.service, c.region, c.ipv6Only, got, err, c.want)
			}
		})
	}
}

// The region is the environment's, else instance metadata's; never a guess.
func TestRegion(t *testing.T) {
	f := &fakeIMDS{}
	withRegion := f.serve(t, map[string]string{"placement/region": "ap-southeast-2"}, nil)
	without := (&fakeIMDS{}).serve(t, nil, nil)
	for _, c := range []struct {
		name, region, defaultRegion string
		want                        string // "" : an error
	}{
		{"AWS_REGION", "eu-west-1", "us-west-2", "eu-west-1"},
		{"AWS_DEFAULT_REGION", "", "us-west-2", "us-west-2"},
		{"instance metadata", "", "", "ap-southeast-2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("AWS_REGION", c.region)
			t.Setenv("AWS_DEFAULT_REGION", c.defaultRegion)
			if got, err := Region(t.Context(), withRegion); err != nil || got != c.want {
				t.Errorf("Region = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	if got, err := Region(t.Context(), without); err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Errorf("Region without one anywhere = %q, %v; want an error that says so", got, err)
	}
}

// hostRecorder is a transport that answers every request with handler, as if it were served at the
// request's host, and records that host.
type hostRecorder struct {
	handler http.HandlerFunc
	mu      sync.Mutex
	hosts   []string
	auth    []string
}

func (h *hostRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.hosts = append(h.hosts, r.URL.Host)
	h.auth = append(h.auth, r.Header.Get("Authorization"))
	h.mu.Unlock()
	w := httptest.NewRecorder()
	h.handler(w, r)
	return w.Result(), nil
}

// DescribeTasks goes to the endpoint the table gives for the task's region and the host's and the
// environment's needs, signed for that region; the fake ECS API answers it there.
func TestECSAPIAtResolvedEndpoint(t *testing.T) {
	var fail atomic.Bool
	fake := fakeECS(t, &fail)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_ENDPOINT_URL_ECS", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	for _, c := range []struct {
		name            string
		region          string
		cfg             Config
		dualStack, fips bool // what the table is asked for
	}{
		{"commercial", "us-west-2", Config{}, false, false},
		{"China", "cn-northwest-1", Config{}, false, false},
		{"GovCloud FIPS", "us-gov-west-1", Config{}, false, true},
		{"IPv6-only by the default route", "eu-west-1", Config{IPv6Only: true}, true, false},
		{"IPv6-only by instance metadata", "cn-north-1",
			Config{Host: Host{InstanceID: "i-0abc", IPv6: netip.MustParseAddr("2001:db8::1")}}, true, false},
		{"IPv6-only and FIPS", "us-east-1", Config{IPv6Only: true}, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fips := "false"
			if c.fips {
				fips = "true"
			}
			t.Setenv("AWS_USE_FIPS_ENDPOINT", fips)
			want, err := Endpoint("ecs", c.region, c.dualStack, c.fips)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(want)
			rec := &hostRecorder{handler: fake.handle}
			s := New(c.cfg)
			s.api.http = &http.Client{Transport: rec}
			arn := "arn:aws:ecs:" + c.region + ":111122223333:task/prod/8f03e41243824aea923aca126495f665"
			got, _, err := s.api.describeMany(t.Context(), c.region, "prod", []string{arn})
			if err != nil || got[arn].service != "curl-api-svc" {
				t.Fatalf("describe = %+v, %v", got, err)
			}
			if len(rec.hosts) != 1 || rec.hosts[0] != u.Host {
				t.Errorf("DescribeTasks went to %q; want %q", rec.hosts, u.Host)
			}
			if scope := "/" + c.region + "/ecs/aws4_request"; !strings.Contains(rec.auth[0], scope) {
				t.Errorf("signed as %q; want the scope %s", rec.auth[0], scope)
			}
		})
	}
}

// IAM is global in each partition: one endpoint, signed for the partition's first region.
func TestIAMEndpoint(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_IAM", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	for region, want := range map[string][2]string{
		"eu-west-1":      {"https://iam.amazonaws.com", "us-east-1"},
		"cn-northwest-1": {"https://iam.cn-north-1.amazonaws.com.cn", "cn-north-1"},
		"us-gov-east-1":  {"https://iam.us-gov.amazonaws.com", "us-gov-west-1"},
	} {
		url, signing, err := IAMEndpoint(region)
		if err != nil || url != want[0] || signing != want[1] {
			t.Errorf("IAMEndpoint(%s) = %s, %s, %v; want %v", region, url, signing, err, want)
		}
	}
	if _, _, err := IAMEndpoint("us-iso-east-1"); err == nil {
		t.Error("an isolated partition got an IAM endpoint nobody checked")
	}
	t.Setenv("AWS_ENDPOINT_URL_IAM", "http://127.0.0.1:9/")
	if url, signing, _ := IAMEndpoint("eu-west-1"); url != "http://127.0.0.1:9/" || signing != "us-east-1" {
		t.Errorf("AWS_ENDPOINT_URL_IAM: %s %s", url, signing)
	}
}
