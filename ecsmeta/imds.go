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
	var h Host
	for _, f := range []struct {
		path string
		dst  *string
	}{
		{"instance-id", &h.InstanceID},
		{"placement/availability-zone", &h.AvailabilityZone},
		{"placement/region", &h.Region},
	} {
		v, err := imdsGet(ctx, c, f.path)
		if err != nil {
			return Host{}, err
		}
		*f.dst = v
	}
	ip, err := imdsGet(ctx, c, "local-ipv4")
	if err != nil {
		return Host{}, err
	}
	if h.LocalIPv4, err = netip.ParseAddr(ip); err != nil || !h.LocalIPv4.Is4() {
		return Host{}, fmt.Errorf("instance metadata: local-ipv4 is not an IPv4 address: %q", ip)
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
	v := strings.TrimSpace(string(b))
	if v == "" || strings.ContainsAny(v, " \n<>{}\"") {
		return "", fmt.Errorf("instance metadata %s: unexpected value %s", path, snippet(b))
	}
	return v, nil
}
