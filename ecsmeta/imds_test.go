package ecsmeta

import (
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

func TestLookupHostFromEmulator(t *testing.T) {
	m := testenv.StartIMDS(t)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", m.URL)
	h, err := LookupHost(t.Context(), NewIMDS())
	if err != nil {
		t.Fatal(err)
	}
	v := testenv.IMDSValues
	if h.InstanceID != v["instance-id"] || h.AvailabilityZone != v["placement-availability-zone"] ||
		h.Region != v["placement-region"] || h.LocalIPv4.String() != v["local-ipv4"] {
		t.Errorf("host = %+v, want the emulator's %v", h, v)
	}

	// The Source fills the host in the background and says so with "".
	s, n := runSource(t, Config{IMDS: NewIMDS()})
	testenv.Eventually(t, 10*time.Second, "host never looked up", func() bool { return n.count("") == 1 })
	if got := s.Host(); got != h {
		t.Errorf("Source host = %+v, want %+v", got, h)
	}
}

func TestLookupHostDisabled(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
	if _, err := LookupHost(t.Context(), NewIMDS()); err == nil {
		t.Fatal("AWS_EC2_METADATA_DISABLED=true still looked up the host")
	}
}

// Off EC2 and with a broken endpoint the lookup fails with an error, and the Source keeps the host
// unknown without notifying.
func TestLookupHostBroken(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"500": serveBody([]byte("oops"), 500),
		"garbage": func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
				_, _ = w.Write([]byte("token"))
				return
			}
			_, _ = w.Write(fixture(t, "garbage.html"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEndpoint(t, h)
			c := imds.New(imds.Options{Endpoint: e.URL, EnableFallback: aws.FalseTernary})
			if host, err := LookupHost(t.Context(), c); err == nil {
				t.Fatalf("broken metadata gave %+v", host)
			}
		})
	}
	c := imds.New(imds.Options{Endpoint: "http://127.0.0.1:1", EnableFallback: aws.FalseTernary})
	s, n := runSource(t, Config{IMDS: c})
	testenv.Eventually(t, 10*time.Second, "failure never recorded", func() bool { return status(s, DepIMDS).LastError != "" })
	if n.count("") != 0 || s.Host().InstanceID != "" {
		t.Error("a failed lookup changed the host")
	}
}
