package ecsmeta

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// NewIMDS returns an IMDSv2 client. The SDK honours AWS_EC2_METADATA_SERVICE_ENDPOINT and
// AWS_EC2_METADATA_DISABLED; AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6 (which imds.New alone does
// not read) selects http://[fd00:ec2::254], for IPv6-only hosts. Falling back to IMDSv1 is off.
func NewIMDS() *imds.Client { return imds.New(imdsOptions(os.Getenv)) }

func imdsOptions(getenv func(string) string) imds.Options {
	o := imds.Options{EnableFallback: aws.FalseTernary}
	if strings.EqualFold(getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"), "IPv6") {
		o.EndpointMode = imds.EndpointModeStateIPv6
	}
	return o
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
	// An IPv6-only instance has no local-ipv4 (IMDS answers 404); its address is ipv6, the primary
	// interface's first IPv6 address. Any other failure is an error: a dual-stack host must not
	// advertise its IPv6 address because IMDS stumbled once.
	for _, path := range addrPaths {
		v, err := imdsGet(ctx, c, path)
		if err != nil && !errors.Is(err, errNotInMetadata) {
			return Host{}, err
		}
		if v != "" {
			values[path] = v
			break
		}
	}
	return hostFromValues(values)
}

var (
	hostPaths = []string{"instance-id", "placement/availability-zone", "placement/region"}
	addrPaths = []string{"local-ipv4", "ipv6"}
)

// errNotInMetadata: IMDS answered 404, the item is not set for this instance.
var errNotInMetadata = errors.New("not set for this instance")

// hostFromValues checks the metadata values (by path) and makes a Host of them. It takes local-ipv4
// when given, else ipv6.
func hostFromValues(v map[string]string) (Host, error) {
	h := Host{InstanceID: v["instance-id"], AvailabilityZone: v["placement/availability-zone"], Region: v["placement/region"]}
	if s, ok := v["local-ipv4"]; ok {
		ip, err := netip.ParseAddr(s)
		if err != nil || !ip.Is4() {
			return Host{}, fmt.Errorf("instance metadata: local-ipv4 is not an IPv4 address: %q", s)
		}
		h.LocalIPv4 = ip
	} else if s, ok := v["ipv6"]; ok {
		// EC2 gives an instance global unicast addresses only (GUA, or ULA from a VPC's own range).
		ip, err := netip.ParseAddr(s)
		if err != nil || !ip.Is6() || ip.Is4In6() || ip.Zone() != "" || !ip.IsGlobalUnicast() {
			return Host{}, fmt.Errorf("instance metadata: ipv6 is not a global IPv6 address: %q", s)
		}
		h.IPv6 = ip
	} else {
		return Host{}, errors.New("instance metadata: neither local-ipv4 nor ipv6 is set")
	}
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

// Addr is the host's address in instance metadata: local-ipv4, or on an IPv6-only instance ipv6.
func (h Host) Addr() netip.Addr {
	return cmp.Or(h.LocalIPv4, h.IPv6)
}

// IPv6Only reports whether instance metadata gave the instance no IPv4 address: it reaches AWS
// endpoints over IPv6 only, at their dual-stack names.
func (h Host) IPv6Only() bool { return h.IPv6.IsValid() && !h.LocalIPv4.IsValid() }

func imdsGet(ctx context.Context, c *imds.Client, path string) (string, error) {
	out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		var status interface{ HTTPStatusCode() int }
		if errors.As(err, &status) && status.HTTPStatusCode() == http.StatusNotFound {
			err = errNotInMetadata
		}
		return "", fmt.Errorf("instance metadata %s: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 1024))
	if err != nil {
		return "", fmt.Errorf("instance metadata %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}
