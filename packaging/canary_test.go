package packaging

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// attrExpr is a cluster query language expression of the two forms the canary uses:
// attribute:<name> == <value>, and not(...) around it.
type attrExpr struct {
	negated     bool
	name, value string
}

var attrEquals = regexp.MustCompile(`^attribute:(\S+) == (\S+)$`)

func parseAttrExpr(s string) (attrExpr, error) {
	var e attrExpr
	if inner, ok := strings.CutPrefix(s, "not("); ok {
		if inner, ok = strings.CutSuffix(inner, ")"); !ok {
			return e, fmt.Errorf("%q: not( without its )", s)
		}
		e.negated, s = true, inner
	}
	m := attrEquals.FindStringSubmatch(s)
	if m == nil {
		return e, fmt.Errorf("%q is not attribute:<name> == <value>", s)
	}
	e.name, e.value = m[1], m[2]
	return e, nil
}

// matches says whether an instance with these attributes meets e: == holds when the instance has
// the attribute with that value, not() when it does not (also when it lacks the attribute).
func (e attrExpr) matches(attrs map[string]string) bool {
	v, ok := attrs[e.name]
	return (ok && v == e.value) != e.negated
}

// memberOf is the one memberOf expression of a list of placement constraints.
func memberOf(t *testing.T, what string, cs []types.PlacementConstraint) attrExpr {
	t.Helper()
	if len(cs) != 1 || cs[0].Type != types.PlacementConstraintTypeMemberOf || cs[0].Expression == nil {
		t.Fatalf("%s: placement constraints %+v, want one memberOf", what, cs)
	}
	e, err := parseAttrExpr(*cs[0].Expression)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return e
}

// Custom container instance attributes (ECS API, Attribute): a name of up to 128 letters, digits,
// hyphens, underscores, forward and back slashes and periods, a value of up to 128 of those and at
// signs, colons and spaces; the ecs. prefix is ECS's own.
var (
	attrName  = regexp.MustCompile(`^[A-Za-z0-9_./\\-]{1,128}$`)
	attrValue = regexp.MustCompile(`^[A-Za-z0-9_./\\@: -]{1,128}$`)
)

// The canary: gliderlabs's DAEMON service stays off the instances with the attribute, the new
// daemon's DAEMON service runs only on them. Both name the same attribute and value, and every
// instance, with the attribute, without it or with another value, meets exactly one of the two.
func TestCanaryPlacement(t *testing.T) {
	var canary ecs.CreateServiceInput
	decodeStrict(t, read(t, "ecs/canary/ecs-registrator-canary-service.json"), &canary)
	var glider ecs.UpdateServiceInput
	decodeStrict(t, read(t, "ecs/canary/gliderlabs-service.json"), &glider)
	if canary.SchedulingStrategy != types.SchedulingStrategyDaemon || canary.LaunchType != types.LaunchTypeEc2 {
		t.Errorf("canary service: %s %s, want a DAEMON service on EC2", canary.SchedulingStrategy, canary.LaunchType)
	}
	if canary.Cluster == nil || glider.Cluster == nil || *canary.Cluster != *glider.Cluster || glider.Service == nil || *glider.Service == "" {
		t.Errorf("the two services are not in one cluster: %v, %v (service %v)", canary.Cluster, glider.Cluster, glider.Service)
	}
	on := memberOf(t, "canary service", canary.PlacementConstraints)
	off := memberOf(t, "gliderlabs service", glider.PlacementConstraints)
	if on.negated || !off.negated || on.name != off.name || on.value != off.value {
		t.Fatalf("canary %+v, gliderlabs %+v: want attribute:<n> == <v> and not(attribute:<n> == <v>)", on, off)
	}
	if !attrName.MatchString(on.name) || strings.HasPrefix(on.name, "ecs.") || !attrValue.MatchString(on.value) {
		t.Errorf("attribute %s=%s is not a custom attribute ECS accepts", on.name, on.value)
	}
	for _, inst := range []map[string]string{
		{},                    // a host that was never touched
		{on.name: on.value},   // a canary host
		{on.name: "elsewise"}, // the attribute with another value
		{"team": on.value},    // another attribute with the value
	} {
		if on.matches(inst) == off.matches(inst) {
			t.Errorf("an instance with attributes %v meets both or neither: canary %v, gliderlabs %v", inst, on.matches(inst), off.matches(inst))
		}
	}
}

// The canary's task definition is a gliderlabs one with the image swapped: gliderlabs's entry point
// path, its command line (which the daemon takes), the socket where gliderlabs's docs mount it.
func TestCanaryTaskDefinition(t *testing.T) {
	var td ecs.RegisterTaskDefinitionInput
	decodeStrict(t, read(t, "ecs/canary/ecs-registrator-canary-task-definition.json"), &td)
	var canary ecs.CreateServiceInput
	decodeStrict(t, read(t, "ecs/canary/ecs-registrator-canary-service.json"), &canary)
	if *canary.TaskDefinition != *td.Family {
		t.Errorf("the canary service runs %s, the task definition is %s", *canary.TaskDefinition, *td.Family)
	}
	checkPlatform(t, "canary", td, true)
	if td.NetworkMode != types.NetworkModeHost || len(td.ContainerDefinitions) != 1 {
		t.Fatalf("canary task: %s with %d containers, want host networking and one container", td.NetworkMode, len(td.ContainerDefinitions))
	}
	c := td.ContainerDefinitions[0]
	if !slices.Equal(c.EntryPoint, []string{"/bin/registrator"}) {
		t.Errorf("entryPoint %v, want gliderlabs's [/bin/registrator]", c.EntryPoint)
	}
	if len(c.Command) == 0 || !strings.HasPrefix(c.Command[len(c.Command)-1], "consul://") {
		t.Fatalf("command %v does not end with gliderlabs's registry URI", c.Command)
	}
	if !slices.Contains(c.Command, "-cleanup") {
		t.Errorf("command %v: without -cleanup the leftovers of containers that stop while the daemons change places stay", c.Command)
	}
	help, _ := exec.Command(daemon(t), "-h").CombinedOutput()
	for _, arg := range c.Command {
		if name, ok := strings.CutPrefix(arg, "-"); ok {
			name, _, _ = strings.Cut(name, "=")
			if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `\b`).Match(help) {
				t.Errorf("%s is no flag of the daemon", arg)
			}
		}
	}
	var socketVolume string
	for _, v := range td.Volumes {
		if v.Host != nil && v.Host.SourcePath != nil && *v.Host.SourcePath == "/var/run/docker.sock" {
			socketVolume = *v.Name
		}
	}
	if !slices.ContainsFunc(c.MountPoints, func(m types.MountPoint) bool {
		return *m.SourceVolume == socketVolume && *m.ContainerPath == "/tmp/docker.sock" && m.ReadOnly != nil && *m.ReadOnly
	}) {
		t.Errorf("the Docker socket is not mounted read-only at /tmp/docker.sock, where gliderlabs mode looks: %+v", c.MountPoints)
	}
	if hc := c.HealthCheck; hc == nil || !slices.Equal(hc.Command, []string{"CMD", "/ecs-registrator", "healthcheck"}) {
		t.Errorf("health check %+v, want CMD /ecs-registrator healthcheck", hc)
	}
}

// packaging/README.md tells the operator what the files need and how to move a host: it names every
// IAM role the CLI files name, and its commands use the canary's attribute as the files do.
func TestReadmeMatchesTheFiles(t *testing.T) {
	readme := string(read(t, "README.md"))
	files, _ := filepath.Glob("ecs/*task-definition.json")
	canary, _ := filepath.Glob("ecs/canary/*task-definition.json")
	for _, f := range append(files, canary...) {
		var td ecs.RegisterTaskDefinitionInput
		decodeStrict(t, read(t, f), &td)
		for _, arn := range []*string{td.TaskRoleArn, td.ExecutionRoleArn} {
			if arn == nil {
				continue
			}
			_, role, _ := strings.Cut(*arn, ":role/")
			if !strings.Contains(readme, "`"+role+"`") {
				t.Errorf("%s names the role %s, which the README does not say to create", f, role)
			}
		}
	}
	var svc ecs.CreateServiceInput
	decodeStrict(t, read(t, "ecs/canary/ecs-registrator-canary-service.json"), &svc)
	on := memberOf(t, "canary service", svc.PlacementConstraints)
	for _, want := range []string{
		"put-attributes --cluster my-cluster \\\n     --attributes name=" + on.name + ",value=" + on.value + ",targetType=container-instance",
		"delete-attributes --cluster my-cluster \\\n  --attributes name=" + on.name + ",targetType=container-instance",
		`ECS_INSTANCE_ATTRIBUTES={"` + on.name + `":"` + on.value + `"}`,
		"attribute:" + on.name + " == " + on.value,
		"not(attribute:" + on.name + " == " + on.value + ")",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("the README lacks %q", want)
		}
	}
}
