package ecsmeta

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// NewIMDS returns an IMDSv2 client. The SDK honours AWS_EC2_METADATA_SERVICE_ENDPOINT and
// AWS_EC2_METADATA_DISABLED; falling back to IMDSv1 is off.
func NewIMDS() *imds.Client {
	return imds.New(imds.Options{EnableFallback: aws.FalseTernary})
}

// LookupHost reads this host's identity from EC2 instance metadata.
func LookupHost(ctx context.Context, c *imds.Client) (Host, error) {
	values := map[string]string{}
	for _, path := range hostPaths {
		v, err := imdsGet(ctx, c, path)
		if err != nil {
			return Host{}, err
		}
		values[path] = v
	}
	return hostFromValues(values)
}

var hostPaths = []string{"instance-id", "placement/availability-zone", "placement/region", "local-ipv4"}

// hostFromValues checks the metadata values (by path) and makes a Host of them.
func hostFromValues(v map[string]string) (Host, error) {
	h := Host{InstanceID: v["instance-id"], AvailabilityZone: v["placement/availability-zone"], Region: v["placement/region"]}
	ip, err := netip.ParseAddr(v["local-ipv4"])
	if err != nil || !ip.Is4() {
		return Host{}, fmt.Errorf("instance metadata: local-ipv4 is not an IPv4 address: %q", v["local-ipv4"])
	}
	h.LocalIPv4 = ip
	for path, val := range v {
		if val == "" || len(val) > 255 || strings.ContainsFunc(val, func(r rune) bool { return r <= ' ' || r > '~' || strings.ContainsRune("<>{}\"", r) }) {
			return Host{}, fmt.Errorf("instance metadata %s: unexpected value %q", path, val)
		}
	}
	if !strings.HasPrefix(h.InstanceID, "i-") || h.AvailabilityZone == "" || h.Region == "" ||
		!strings.HasPrefix(h.AvailabilityZone, h.Region) {
		return Host{}, fmt.Errorf("instance metadata: implausible identity: instance %q, zone %q, region %q",
			h.InstanceID, h.AvailabilityZone, h.Region)
	}
	return h, nil
}

func imdsGet(ctx context.Context, c *imds.Client, path string) (string, error) {
	out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", fmt.Errorf("instance metadata %s: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 1024))
	if err != nil {
		return "", fmt.Errorf("instance metadata %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}
