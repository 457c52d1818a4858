package consul

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

func TestRoleName(t *testing.T) {
	t.Parallel()
	for arn, want := range map[string]string{
		"arn:aws:sts::123456789012:assumed-role/orders-task/7f3c":    "orders-task",
		"arn:aws-cn:sts::123456789012:assumed-role/orders-task/7f3c": "orders-task",
		"arn:aws:iam::123456789012:role/mesh/orders-task":            "orders-task",
		"arn:aws:iam::123456789012:role/orders-task":                 "orders-task",
		"arn:aws:iam::123456789012:user/alice":                       "",
		"arn:aws:sts::123456789012:federated-user/alice":             "",
		"arn:aws:sts::123456789012:assumed-role//session":            "",
		"not an arn": "",
	} {
		got, err := roleName(arn)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("roleName(%q) = %q, %v; want %q", arn, got, err, want)
		}
	}
}

// With entity details, the login's signed STS request carries a signed GetRole request for the
// caller's role (asked of STS first) in the headers Consul's aws-iam auth method reads, and the
// server ID in both.
func TestIAMLoginEntityDetails(t *testing.T) {
	iam := testenv.StartFakeIAM(t, "127.0.0.1", "123456789012", map[string]testenv.IAMRole{
		"AKIAORDERS": {Name: "orders-task", Path: "/mesh/", Tags: map[string]string{"consul.hashicorp.com.service-name": "orders"}}})
	t.Setenv("AWS_ENDPOINT_URL_STS", iam.URL)
	t.Setenv("AWS_ENDPOINT_URL_IAM", iam.URL+"/iam")
	l := IAMLogin{Method: "m", ServerID: "consul.test", Entity: true, Region: "us-east-1",
		Creds: credentials.NewStaticCredentialsProvider("AKIAORDERS", "secret", "session")}
	data, err := l.bearer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var b map[string]string
	if err := json.Unmarshal([]byte(data), &b); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(b["iam_request_headers"])
	var h http.Header
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	if h.Get(getEntityMethod) != "POST" || h.Get(getEntityURL) != iam.URL+"/iam/" ||
		h.Get(getEntityBody) != "Action=GetRole&RoleName=orders-task&Version=2010-05-08" || h.Get(iamServerIDHeader) != "consul.test" {
		t.Errorf("the STS request's headers: %v", h)
	}
	if !strings.Contains(h.Get("Authorization"), "x-consul-iam-getentity-headers") {
		t.Errorf("the GetRole request is not covered by the STS signature: %s", h.Get("Authorization"))
	}
	var role http.Header
	if err := json.Unmarshal([]byte(h.Get(getEntityHeaders)), &role); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(role.Get("Authorization"), "/us-east-1/iam/aws4_request") || role.Get(iamServerIDHeader) != "consul.test" {
		t.Errorf("the GetRole request's headers: %v", role)
	}

	l.Creds = credentials.NewStaticCredentialsProvider("AKIAUNKNOWN", "secret", "")
	if _, err := l.bearer(t.Context()); err == nil || !strings.Contains(err.Error(), "InvalidClientTokenId") {
		t.Errorf("credentials STS does not know: %v", err)
	}
}
