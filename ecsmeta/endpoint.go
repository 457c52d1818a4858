package ecsmeta

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// partition is an AWS partition's DNS names for regional endpoints.
type partition struct {
	name, regionPrefix         string
	dnsSuffix, dualStackSuffix string
}

// partitions are the partitions of the AWS SDK's endpoint rules (aws-sdk-go-v2
// internal/endpoints/awsrulesfn/partitions.json, v1.48.0), found by region prefix as its regionRegex
// does; any other region is in commercialPartition, as the SDK falls back to "aws".
var partitions = []partition{
	{"aws-cn", "cn-", "amazonaws.com.cn", "api.amazonwebservices.com.cn"},
	{"aws-us-gov", "us-gov-", "amazonaws.com", "api.aws"},
	{"aws-iso", "us-iso-", "c2s.ic.gov", "api.aws.ic.gov"},
	{"aws-iso-b", "us-isob-", "sc2s.sgov.gov", "api.aws.scloud"},
	{"aws-iso-e", "eu-isoe-", "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk"},
	{"aws-iso-f", "us-isof-", "csp.hci.ic.gov", "api.aws.hci.ic.gov"},
	{"aws-eusc", "eusc-", "amazonaws.eu", "api.amazonwebservices.eu"},
}

var commercialPartition = partition{"aws", "", "amazonaws.com", "api.aws"}

// Endpoint is the https URL of the regional endpoint of service ("ecs" or "sts") in region, as the
// SDK's endpoint rules for ECS and STS build it: <service>[-fips].<region>.<partition's DNS suffix,
// or its dual-stack suffix>. STS is always regional, as the SDK is by default: a request signed for
// the daemon's region is answered by that region's endpoint, and the legacy global
// sts.amazonaws.com takes us-east-1 signatures only.
func Endpoint(service, region string, dualStack, fips bool) (string, error) {
	if service != "ecs" && service != "sts" {
		return "", fmt.Errorf("no endpoint rules for AWS service %q", service)
	}
	if !validRegion(region) {
		return "", fmt.Errorf("AWS region %q is not a region name", region)
	}
	p := commercialPartition
	for _, q := range partitions {
		if strings.HasPrefix(region, q.regionPrefix) {
			p = q
			break
		}
	}
	suffix := p.dnsSuffix
	if dualStack {
		suffix = p.dualStackSuffix
	}
	host := service
	// GovCloud's STS endpoints are FIPS endpoints already: the SDK sends FIPS requests to them as
	// they are, and uses sts-fips only on the dual-stack ones.
	if fips && (service != "sts" || p.name != "aws-us-gov" || dualStack) {
		host += "-fips"
	}
	return "https://" + host + "." + region + "." + suffix, nil
}

// ServiceEndpoint is where the daemon sends its requests for service in region, by the SDK's
// environment variables: AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL, as given; else
// Endpoint's, dual-stack when AWS_USE_DUALSTACK_ENDPOINT=true or dualStack (the caller knows the
// endpoint must answer over IPv6), FIPS when AWS_USE_FIPS_ENDPOINT=true.
func ServiceEndpoint(service, region string, dualStack bool) (string, error) {
	if u := cmp.Or(os.Getenv("AWS_ENDPOINT_URL_"+strings.ToUpper(service)), os.Getenv("AWS_ENDPOINT_URL")); u != "" {
		return u, nil
	}
	dualStack = dualStack || strings.EqualFold(os.Getenv("AWS_USE_DUALSTACK_ENDPOINT"), "true")
	return Endpoint(service, region, dualStack, strings.EqualFold(os.Getenv("AWS_USE_FIPS_ENDPOINT"), "true"))
}

// Region is the AWS Region the daemon runs in: AWS_REGION, else AWS_DEFAULT_REGION, else the
// instance's from instance metadata (placement/region). There is no default: a request signed for
// the wrong region is refused, and a daemon sent to the wrong partition does not reach it at all.
func Region(ctx context.Context, c *imds.Client) (string, error) {
	if r := cmp.Or(os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION")); r != "" {
		return r, nil
	}
	r, err := imdsGet(ctx, c, "placement/region")
	if err != nil {
		return "", fmt.Errorf("no AWS region: AWS_REGION is not set and %w", err)
	}
	if !validRegion(r) {
		return "", fmt.Errorf("no AWS region: instance metadata placement/region is %q", r)
	}
	return r, nil
}

// validRegion reports whether region can be a region name: a DNS label of lower-case letters,
// digits and hyphens. It becomes part of a host name.
func validRegion(region string) bool {
	return region != "" && len(region) <= 63 && region[0] != '-' && region[len(region)-1] != '-' &&
		!strings.ContainsFunc(region, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' })
}

// IAMEndpoint is where IAM requests for a caller in region go, and the region they are signed for:
// IAM is global in each partition (the SDK's endpoint table: iam.amazonaws.com signed for us-east-1,
// iam.cn-north-1.amazonaws.com.cn for cn-north-1, iam.us-gov.amazonaws.com for us-gov-west-1), and
// AWS_ENDPOINT_URL_IAM, else AWS_ENDPOINT_URL, wins as for the other services.
func IAMEndpoint(region string) (url, signingRegion string, err error) {
	if !validRegion(region) {
		return "", "", fmt.Errorf("AWS region %q is not a region name", region)
	}
	var host string
	switch {
	case strings.HasPrefix(region, "cn-"):
		host, signingRegion = "https://iam.cn-north-1.amazonaws.com.cn", "cn-north-1"
	case strings.HasPrefix(region, "us-gov-"):
		host, signingRegion = "https://iam.us-gov.amazonaws.com", "us-gov-west-1"
	default:
		for _, p := range partitions {
			if strings.HasPrefix(region, p.regionPrefix) {
				return "", "", fmt.Errorf("no IAM endpoint known for the %s partition: set AWS_ENDPOINT_URL_IAM", p.name)
			}
		}
		host, signingRegion = "https://iam.amazonaws.com", "us-east-1"
	}
	if u := cmp.Or(os.Getenv("AWS_ENDPOINT_URL_IAM"), os.Getenv("AWS_ENDPOINT_URL")); u != "" {
		host = u
	}
	return host, signingRegion, nil
}
