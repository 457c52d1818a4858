package ecsmeta

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// fakeECS answers DescribeTasks as the ECS API does on the wire (JSON 1.1, epoch-second timestamps).
func fakeECS(t *testing.T, fail *atomic.Bool) *endpoint {
	return newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var in struct {
			Cluster string
			Tasks   []string
			Include []string
		}
		if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerServiceV20141113.DescribeTasks" ||
			r.Header.Get("Content-Type") != "application/x-amz-json-1.1" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") ||
			json.Unmarshal(b, &in) != nil {
			t.Errorf("unexpected request %s %v %s", r.Method, r.Header, b)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if fail.Load() || in.Cluster != "prod" {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"ClusterNotFoundException","message":"Cluster not found."}`))
			return
		}
		if len(in.Tasks) < 1 || len(in.Tasks) > 100 || len(in.Include) != 1 || in.Include[0] != "TAGS" {
			t.Errorf("DescribeTasks input = %s", b)
		}
		var tasks []string
		for _, arn := range in.Tasks {
			tasks = append(tasks, `{"taskArn":"`+arn+`","clusterArn":"arn:aws:ecs:us-west-2:111122223333:cluster/prod",`+
				`"group":"service:curl-api-svc","startedBy":"ecs-svc/1234567890123456789","lastStatus":"RUNNING","desiredStatus":"RUNNING",`+
				`"createdAt":1.714557600123E9,"healthStatus":"UNKNOWN","availabilityZone":"us-west-2b",`+
				`"containers":[{"name":"curl","runtimeId":"`+awsvpcApp+`","lastStatus":"RUNNING","networkInterfaces":[{"privateIpv4Address":"10.0.2.61"}]}],`+
				`"tags":[{"key":"team","value":"payments"},{"key":"cost-center","value":"secret-ish"}]}`)
		}
		_, _ = w.Write([]byte(`{"failures":[],"tasks":[` + strings.Join(tasks, ",") + `]}`))
	})
}

func TestSourceECSAPI(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	api := fakeECS(t, &fail)
	t.Setenv("AWS_ENDPOINT_URL_ECS", api.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	// Task metadata without ServiceName (an agent older than 1.63.1): the API supplies it.
	noService := strings.Replace(string(fixture(t, "tmds-task-awsvpc.json")), `,"ServiceName":"curl-svc"`, "", 1)
	tmds := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/taskWithTags") { // an agent too old to read tags
			w.WriteHeader(404)
			return
		}
		_, _ = w.Write([]byte(noService))
	})
	s, n := runSource(t, Config{TMDSURL: tmds.URL, API: true, TagMeta: []string{"team"}, DescribeWindow: time.Millisecond, DescribeInterval: time.Millisecond})
	s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
	testenv.Eventually(t, 10*time.Second, "API failure never recorded", func() bool {
		st := status(s, DepAPI)
		return st.Used && !st.Up && strings.Contains(st.LastError, "ClusterNotFoundException")
	})
	fail.Store(false)
	var task Task
	testenv.Eventually(t, 10*time.Second, "service and tags never arrived", func() bool {
		task, _ = s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
		return task.Service != "" && n.count(awsvpcApp) > 0
	})
	if task.Service != "curl-api-svc" || len(task.Tags) != 1 || task.Tags["team"] != "payments" {
		t.Errorf("task = %+v; want service from the group and only the allowed tag", task)
	}
	calls := api.requests.Load()
	for range 50 {
		s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
	}
	if got := api.requests.Load(); got != calls {
		t.Errorf("lookups called the ECS API %d more times; it is cached per task", got-calls)
	}
}

// On ECS the daemon's task role comes from the agent's credentials endpoint, with its authorization
// token when the agent gives one; the request is signed with those credentials.
func TestECSAPITaskRoleCredentials(t *testing.T) {
	creds := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "token-from-file" {
			w.WriteHeader(401)
			return
		}
		_, _ = w.Write([]byte(`{"AccessKeyId":"ASIATASKROLE","SecretAccessKey":"secret","Token":"session-token",` +
			`"Expiration":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`))
	})
	var signed atomic.Value
	var fail atomic.Bool
	fake := fakeECS(t, &fail)
	api := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		signed.Store(r.Header.Get("Authorization") + " " + r.Header.Get("X-Amz-Security-Token"))
		fake.handle(w, r)
	})
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("token-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", creds.URL+"/creds")
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token)
	t.Setenv("AWS_ENDPOINT_URL_ECS", api.URL)

	got, err := runDescriber(t, time.Millisecond, time.Millisecond).describe(t, Task{Cluster: "prod", ARN: awsvpcARN})
	if err != nil || got.service != "curl-api-svc" || got.tags["team"] != "payments" {
		t.Fatalf("describe = %+v, %v", got, err)
	}
	if s, _ := signed.Load().(string); !strings.Contains(s, "Credential=ASIATASKROLE/") || !strings.HasSuffix(s, " session-token") ||
		!strings.Contains(s, "/us-west-2/ecs/aws4_request") {
		t.Errorf("request signed as %q; want the task role's key and session token, the ARN's region", s)
	}
}

// A full credentials URI over plain http to anywhere but the host or the ECS agent is refused: the
// role's credentials and token would travel in the clear.
func TestECSAPIRefusesAnUntrustedCredentialsURI(t *testing.T) {
	for uri, ok := range map[string]bool{"http://127.0.0.1:51679/creds": true, "http://169.254.170.23/v1/credentials": true,
		"http://[fd00:ec2::23]/creds": true, "https://creds.example/x": true, "http://10.0.0.9/creds": false, "file:///etc/creds": false} {
		if got := trustedCredentialsURI(uri); got != ok {
			t.Errorf("trustedCredentialsURI(%q) = %v, want %v", uri, got, ok)
		}
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.9/creds")
	t.Setenv("AWS_REGION", "us-west-2")
	_, err := runDescriber(t, time.Millisecond, time.Millisecond).describe(t, Task{Cluster: "prod", ARN: awsvpcARN})
	if err == nil || !strings.Contains(err.Error(), "plain http only to loopback") {
		t.Errorf("describe with an untrusted credentials URI: %v", err)
	}
}
