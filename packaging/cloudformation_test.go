package packaging

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

type template struct {
	AWSTemplateFormatVersion string
	Description              string
	Parameters               map[string]struct {
		Type                  string
		Default               any
		AllowedValues         []string
		AllowedPattern        string
		ConstraintDescription string
		Description           string
	}
	Rules map[string]struct {
		RuleCondition any
		Assertions    []struct {
			Assert            any
			AssertDescription string
		}
	}
	Conditions map[string]any
	Resources  map[string]resource
	Outputs    map[string]struct {
		Condition   string
		Description string
		Value       any
	}
}

type resource struct {
	Type       string
	Condition  string
	DependsOn  []string
	Metadata   map[string]any
	Properties map[string]any
}

var pseudo = []string{"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::StackId", "AWS::NoValue", "AWS::URLSuffix"}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

func loadTemplate(t *testing.T) template {
	var tpl template
	decodeStrict(t, read(t, "cloudformation/ecs-registrator.json"), &tpl)
	return tpl
}

// Every Ref, Fn::GetAtt, Fn::Sub variable, Fn::If and Condition names a parameter, resource, condition
// or pseudo parameter the template defines.
func TestCloudFormationReferences(t *testing.T) {
	tpl := loadTemplate(t)
	if tpl.AWSTemplateFormatVersion != "2010-09-09" || len(tpl.Resources) == 0 {
		t.Fatal("not a CloudFormation template")
	}
	known := func(name string) bool {
		_, p := tpl.Parameters[name]
		_, r := tpl.Resources[name]
		return p || r || slices.Contains(pseudo, name)
	}
	used := map[string]bool{}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, arg := range x {
				switch k {
				case "Ref":
					name, _ := arg.(string)
					if !known(name) {
						t.Errorf("%s: Ref %v is not defined", where, arg)
					}
					used[name] = true
				case "Fn::GetAtt":
					parts, _ := arg.([]any)
					if len(parts) != 2 {
						t.Errorf("%s: Fn::GetAtt %v", where, arg)
					} else if _, ok := tpl.Resources[parts[0].(string)]; !ok {
						t.Errorf("%s: Fn::GetAtt of unknown resource %v", where, parts[0])
					}
				case "Fn::Sub":
					s, ok := arg.(string)
					if !ok {
						t.Errorf("%s: Fn::Sub takes a string here", where)
					}
					for _, m := range subVar.FindAllStringSubmatch(s, -1) {
						name, _, _ := strings.Cut(m[1], ".")
						if !known(name) {
							t.Errorf("%s: ${%s} is not defined", where, m[1])
						}
						used[name] = true
					}
				case "Fn::If", "Fn::Equals":
					args, _ := arg.([]any)
					if k == "Fn::If" {
						if len(args) != 3 {
							t.Errorf("%s: Fn::If takes 3 arguments", where)
						} else if _, ok := tpl.Conditions[args[0].(string)]; !ok {
							t.Errorf("%s: Fn::If on unknown condition %v", where, args[0])
						}
					}
				}
				walk(where+"."+k, arg)
			}
		case []any:
			for _, e := range x {
				walk(where, e)
			}
		}
	}
	for name, r := range tpl.Resources {
		if !strings.HasPrefix(r.Type, "AWS::") {
			t.Errorf("%s: type %q", name, r.Type)
		}
		if r.Condition != "" {
			if _, ok := tpl.Conditions[r.Condition]; !ok {
				t.Errorf("%s: unknown condition %s", name, r.Condition)
			}
		}
		for _, dep := range r.DependsOn {
			if _, ok := tpl.Resources[dep]; !ok {
				t.Errorf("%s: depends on unknown %s", name, dep)
			}
		}
		walk(name, r.Properties)
		walk(name+".Metadata", r.Metadata)
	}
	for name, c := range tpl.Conditions {
		walk("Conditions."+name, c)
	}
	for name, r := range tpl.Rules {
		walk("Rules."+name, r.RuleCondition)
		for _, a := range r.Assertions {
			walk("Rules."+name, a.Assert)
		}
	}
	for name, o := range tpl.Outputs {
		if o.Condition != "" {
			if _, ok := tpl.Conditions[o.Condition]; !ok {
				t.Errorf("output %s: unknown condition %s", name, o.Condition)
			}
		}
		walk("Outputs."+name, o.Value)
	}
	// Every parameter is used.
	for name := range tpl.Parameters {
		if !used[name] {
			t.Errorf("parameter %s is never used", name)
		}
	}
}

// resolve replaces intrinsic functions with plausible values, so the properties can be decoded into
// the SDK's types.
func resolve(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				switch k {
				case "Ref":
					return "ref-" + arg.(string)
				case "Fn::Sub":
					return subVar.ReplaceAllString(arg.(string), "x")
				case "Fn::GetAtt":
					return "arn:aws:iam::111122223333:role/x"
				case "Fn::If":
					return resolve(arg.([]any)[1])
				}
			}
		}
		out := map[string]any{}
		for k, e := range x {
			out[k] = resolve(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = resolve(e)
		}
		return out
	}
	return v
}

// The template's task definitions and services are what the SDK takes, and the daemon's keeps the
// invariants of the standalone task definition.
func TestCloudFormationECSResources(t *testing.T) {
	tpl := loadTemplate(t)
	counts := map[string]int{}
	for _, name := range slices.Sorted(maps.Keys(tpl.Resources)) {
		r := tpl.Resources[name]
		counts[r.Type]++
		b, err := json.Marshal(resolve(r.Properties))
		if err != nil {
			t.Fatal(err)
		}
		switch r.Type {
		case "AWS::ECS::TaskDefinition":
			var td ecs.RegisterTaskDefinitionInput
			decodeStrict(t, b, &td)
			// Both are DAEMON services with multi-architecture images (ours a manifest list, and
			// hashicorp/consul).
			checkPlatform(t, name, td, true)
			if name == "RegistratorTaskDefinition" {
				// Env values that are Refs cannot be judged here; the rest can.
				for i, kv := range td.ContainerDefinitions[0].Environment {
					if strings.HasPrefix(*kv.Value, "ref-") {
						empty := ""
						td.ContainerDefinitions[0].Environment[i].Value = &empty
					}
				}
				checkDaemonTask(t, td)
			}
		case "AWS::ECS::Service":
			var svc ecs.CreateServiceInput
			decodeStrict(t, b, &svc)
			if svc.SchedulingStrategy != "DAEMON" || svc.LaunchType != "EC2" {
				t.Errorf("%s: %s %s", name, svc.SchedulingStrategy, svc.LaunchType)
			}
		}
	}
	if counts["AWS::ECS::TaskDefinition"] != 2 || counts["AWS::ECS::Service"] != 2 {
		t.Errorf("resources: %v", counts)
	}
	// The daemon's task role exists only for the ECS API or IAM login (which needs an identity, not a
	// permission); its permissions are DescribeTasks and DescribeContainerInstances, and only with the
	// ECS API.
	role := tpl.Resources["RegistratorTaskRole"]
	if role.Condition != "NeedsTaskRole" {
		t.Error("the daemon's task role must exist only with EnableEcsApi or ConsulIamAuthMethod")
	}
	b, _ := json.Marshal(role.Properties["Policies"])
	if got := regexp.MustCompile(`"Action":"([^"]+)"`).FindAllStringSubmatch(string(b), -1); len(got) != 2 || got[0][1] != "ecs:DescribeTasks" || got[1][1] != "ecs:DescribeContainerInstances" ||
		!strings.HasPrefix(string(b), `{"Fn::If":["UseEcsApi",`) {
		t.Errorf("daemon task role policies: %s", b)
	}
	// Each task definition has its own execution role (what each may read is checked for every
	// combination of parameters in TestExecutionRolesReadOwnSecrets), and neither may read every secret.
	execRoles := map[string]string{}
	for _, td := range []string{"RegistratorTaskDefinition", "ConsulTaskDefinition"} {
		b, _ := json.Marshal(tpl.Resources[td].Properties["ExecutionRoleArn"])
		m := regexp.MustCompile(`^\{"Fn::GetAtt":\["([A-Za-z0-9]+)","Arn"\]\}$`).FindStringSubmatch(string(b))
		if m == nil || tpl.Resources[m[1]].Type != "AWS::IAM::Role" {
			t.Fatalf("%s: ExecutionRoleArn %s is not a role of the stack", td, b)
		}
		if other, ok := execRoles[m[1]]; ok {
			t.Errorf("%s and %s share the execution role %s: each could read the other's secrets", td, other, m[1])
		}
		execRoles[m[1]] = td
		policies, _ := json.Marshal(tpl.Resources[m[1]].Properties["Policies"])
		if strings.Contains(string(policies), `"*"`) {
			t.Errorf("%s's execution role %s may read every secret: %s", td, m[1], policies)
		}
	}
}
