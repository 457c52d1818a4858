package consul

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
)

// IAMLogin logs in to Consul through an aws-iam auth method with AWS credentials: the daemon with its
// own (the daemon's task role), `sidecar-for` with its task's, so that a proxy gets a token for
// exactly its service (a binding rule of type service, named from the role's tag).
type IAMLogin struct {
	Method   string
	ServerID string // the auth method's ServerIDHeaderValue, when it requires one
	Creds    aws.CredentialsProvider
	// Entity also signs an iam:GetRole request for the caller's role, for an auth method with
	// EnableIAMEntityDetails: its binding rules then read the role's tags and path. The role's name
	// is asked of STS first (GetCallerIdentity, from this host).
	Entity bool
	// Region is the region the requests are signed for; "" finds it at the first login
	// (ecsmeta.Region: the environment's, else instance metadata's) and keeps it.
	Region string
}

// IAM login's wire format, as Consul's aws-iam auth method reads it (consul-awsauth, which Consul
// 1.14 uses): a signed STS GetCallerIdentity request, which the Consul servers send to STS
// themselves, carrying in its signed headers a signed iam:GetRole request when entity details are on.
const (
	stsBody            = "Action=GetCallerIdentity&Version=2011-06-15"
	iamServerIDHeader  = "X-Consul-IAM-ServerID"
	getEntityMethod    = "X-Consul-IAM-GetEntity-Method"
	getEntityURL       = "X-Consul-IAM-GetEntity-URL"
	getEntityHeaders   = "X-Consul-IAM-GetEntity-Headers"
	getEntityBody      = "X-Consul-IAM-GetEntity-Body"
	formContentType    = "application/x-www-form-urlencoded; charset=utf-8"
	maxSTSResponseSize = 64 << 10
)

// Login logs in with consul, a client that carries no token (Consul refuses a login that does).
func (c *IAMLogin) Login(ctx context.Context, consul *api.Client) (*api.ACLToken, error) {
	data, err := c.bearer(ctx)
	if err != nil {
		return nil, fmt.Errorf("consul aws-iam login: %w", err)
	}
	tok, _, err := consul.ACL().Login(&api.ACLLoginParams{AuthMethod: c.Method, BearerToken: data}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul aws-iam login with auth method %q: %w", c.Method, err)
	}
	return tok, nil
}

// Logout gives a token got by a login back to Consul.
func Logout(ctx context.Context, consul *api.Client, token string) error {
	_, err := consul.ACL().Logout((&api.WriteOptions{Token: token}).WithContext(ctx))
	return err
}

// bearer is the login's bearer token: a GetCallerIdentity request signed for the region, for the
// STS endpoint the auth method trusts (AWS_ENDPOINT_URL_STS, else the region's).
func (c *IAMLogin) bearer(ctx context.Context) (string, error) {
	if c.Region == "" {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		region, err := ecsmeta.Region(rctx, ecsmeta.NewIMDS())
		cancel()
		if err != nil {
			return "", err
		}
		c.Region = region // the host does not move
	}
	// Consul's servers send this request to STS, not this host: that the host is IPv6-only does not
	// make it dual-stack, AWS_USE_DUALSTACK_ENDPOINT does. Unless the auth method sets an
	// STSEndpoint, Consul accepts only sts.*.amazonaws.com and sts-fips.*.amazonaws.com (its
	// internal/iamauth/token.go, validateSTSHostname): not the dual-stack or China endpoints.
	endpoint, err := ecsmeta.ServiceEndpoint("sts", c.Region, false)
	if err != nil {
		return "", err
	}
	endpoint = strings.TrimSuffix(endpoint, "/") + "/"
	creds, err := c.Creds.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("aws credentials: %w", err)
	}
	header := http.Header{"Content-Type": {formContentType}}
	if c.ServerID != "" {
		header.Set(iamServerIDHeader, c.ServerID)
	}
	if c.Entity {
		if err := c.addGetRole(ctx, creds, endpoint, header); err != nil {
			return "", err
		}
	}
	req, err := ecsmeta.SignedRequest(ctx, creds, http.MethodPost, endpoint, "sts", c.Region, []byte(stsBody), header)
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

// addGetRole puts a signed iam:GetRole request for the caller's role into header, as the auth method
// reads it with EnableIAMEntityDetails: the STS request's signature then covers it.
func (c *IAMLogin) addGetRole(ctx context.Context, creds aws.Credentials, stsEndpoint string, header http.Header) error {
	arn, err := callerARN(ctx, creds, stsEndpoint, c.Region)
	if err != nil {
		return err
	}
	role, err := roleName(arn)
	if err != nil {
		return err
	}
	endpoint, signingRegion, err := ecsmeta.IAMEndpoint(c.Region)
	if err != nil {
		return err
	}
	endpoint = strings.TrimSuffix(endpoint, "/") + "/"
	body := "Action=GetRole&RoleName=" + url.QueryEscape(role) + "&Version=2010-05-08"
	h := http.Header{"Content-Type": {formContentType}}
	if c.ServerID != "" {
		h.Set(iamServerIDHeader, c.ServerID)
	}
	req, err := ecsmeta.SignedRequest(ctx, creds, http.MethodPost, endpoint, "iam", signingRegion, []byte(body), h)
	if err != nil {
		return err
	}
	signed, err := json.Marshal(req.Header)
	if err != nil {
		return err
	}
	header.Set(getEntityMethod, http.MethodPost)
	header.Set(getEntityURL, endpoint)
	header.Set(getEntityHeaders, string(signed))
	header.Set(getEntityBody, body)
	return nil
}

// callerARN asks STS who the credentials are.
func callerARN(ctx context.Context, creds aws.Credentials, endpoint, region string) (string, error) {
	req, err := ecsmeta.SignedRequest(ctx, creds, http.MethodPost, endpoint, "sts", region, []byte(stsBody),
		http.Header{"Content-Type": {formContentType}})
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("sts GetCallerIdentity: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSTSResponseSize))
	if err != nil {
		return "", fmt.Errorf("sts GetCallerIdentity: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("sts GetCallerIdentity: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var out struct {
		Arn string `xml:"GetCallerIdentityResult>Arn"`
	}
	if err := xml.Unmarshal(b, &out); err != nil || out.Arn == "" {
		return "", fmt.Errorf("sts GetCallerIdentity: no Arn in the answer (%v)", err)
	}
	return out.Arn, nil
}

// roleName is the IAM role of a caller ARN: arn:<partition>:sts::<account>:assumed-role/<role>/<session>
// (a task role's credentials), or arn:<partition>:iam::<account>:role/<path>/<role>.
func roleName(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 {
		res := strings.Split(parts[5], "/")
		switch {
		case parts[2] == "sts" && res[0] == "assumed-role" && len(res) >= 3 && res[1] != "":
			return res[1], nil
		case parts[2] == "iam" && res[0] == "role" && len(res) >= 2 && res[len(res)-1] != "":
			return res[len(res)-1], nil
		}
	}
	return "", fmt.Errorf("the credentials are not a role's (%s): an auth method that reads the role's tags needs a task role", arn)
}
