package packaging

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// stack is the template as CloudFormation creates it for one set of parameter values: its conditions
// evaluated, the resources and outputs whose condition is false left out, every Fn::If replaced by
// the branch its condition picks, and AWS::NoValue removed.
type stack struct {
	params    map[string]string
	conds     map[string]bool
	resources map[string]resource
	outputs   map[string]any
}

// instantiate evaluates tpl for the parameter values given; a parameter not given takes its Default.
func instantiate(t *testing.T, tpl template, given map[string]string) stack {
	t.Helper()
	st := stack{params: map[string]string{}, conds: map[string]bool{}, resources: map[string]resource{}, outputs: map[string]any{}}
	for name, p := range tpl.Parameters {
		if v, ok := given[name]; ok {
			if len(p.AllowedValues) > 0 && !slices.Contains(p.AllowedValues, v) {
				t.Fatalf("parameter %s=%q is not one of %v", name, v, p.AllowedValues)
			}
			if p.AllowedPattern != "" && !regexp.MustCompile(p.AllowedPattern).MatchString(v) {
				t.Fatalf("parameter %s=%q does not match its AllowedPattern %s", name, v, p.AllowedPattern)
			}
			st.params[name] = v
		} else if p.Default != nil {
			st.params[name] = fmt.Sprint(p.Default)
		}
	}
	for name := range given {
		if _, ok := tpl.Parameters[name]; !ok {
			t.Fatalf("no parameter %s", name)
		}
	}
	ev := condEval{t: t, tpl: tpl, params: st.params, done: st.conds, busy: map[string]bool{}}
	for name := range tpl.Conditions {
		ev.cond(name)
	}
	for name, r := range tpl.Resources {
		if r.Condition != "" && !st.conds[r.Condition] {
			continue
		}
		r.Properties, _ = st.resolveIf(r.Properties).(map[string]any)
		r.Metadata, _ = st.resolveIf(r.Metadata).(map[string]any)
		st.resources[name] = r
	}
	for name, o := range tpl.Outputs {
		if o.Condition == "" || st.conds[o.Condition] {
			st.outputs[name] = st.resolveIf(o.Value)
		}
	}
	return st
}

// condEval evaluates the Conditions section: Fn::Equals over literals and parameter Refs, Fn::Not,
// Fn::And, Fn::Or and Condition references, each condition once.
type condEval struct {
	t      *testing.T
	tpl    template
	params map[string]string
	done   map[string]bool
	busy   map[string]bool // conditions being evaluated: a cycle is an error
}

func (e *condEval) cond(name string) bool {
	if v, ok := e.done[name]; ok {
		return v
	}
	def, ok := e.tpl.Conditions[name]
	if !ok {
		e.t.Fatalf("unknown condition %s", name)
	}
	if e.busy[name] {
		e.t.Fatalf("condition %s refers to itself", name)
	}
	e.busy[name] = true
	v := e.eval(name, def)
	e.done[name] = v
	return v
}

func (e *condEval) eval(where string, v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		e.t.Fatalf("condition %s: %v is not a condition function", where, v)
	}
	for fn, arg := range m {
		if fn == "Condition" {
			name, _ := arg.(string)
			return e.cond(name)
		}
		args, _ := arg.([]any)
		switch fn {
		case "Fn::Equals":
			if len(args) != 2 {
				e.t.Fatalf("condition %s: Fn::Equals takes 2 arguments: %v", where, args)
			}
			return e.value(where, args[0]) == e.value(where, args[1])
		case "Fn::Not":
			if len(args) != 1 {
				e.t.Fatalf("condition %s: Fn::Not takes 1 argument: %v", where, args)
			}
			return !e.eval(where, args[0])
		case "Fn::And", "Fn::Or":
			if len(args) < 2 || len(args) > 10 {
				e.t.Fatalf("condition %s: %s takes 2 to 10 conditions: %v", where, fn, args)
			}
			and := fn == "Fn::And"
			for _, a := range args {
				if e.eval(where, a) != and {
					return !and
				}
			}
			return and
		}
		e.t.Fatalf("condition %s: %s is not a condition function", where, fn)
	}
	return false
}

// value is an Fn::Equals argument: a literal, a parameter's value, an Fn::Join of those, or an
// Fn::Select of an Fn::Split of those. CloudFormation evaluates every condition whatever uses it, so
// an Fn::Select past the end fails the stack: that fails the test.
func (e *condEval) value(where string, v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if args, ok := x["Fn::Join"].([]any); ok && len(x) == 1 && len(args) == 2 {
			sep, _ := args[0].(string)
			list, _ := args[1].([]any)
			var parts []string
			for _, p := range list {
				parts = append(parts, e.value(where, p))
			}
			return strings.Join(parts, sep)
		}
		if name, ok := x["Ref"].(string); ok && len(x) == 1 {
			val, ok := e.params[name]
			if !ok {
				e.t.Fatalf("condition %s: parameter %s has no value", where, name)
			}
			return val
		}
		if args, ok := x["Fn::Select"].([]any); ok && len(x) == 1 && len(args) == 2 {
			split, _ := args[1].(map[string]any)
			sargs, ok := split["Fn::Split"].([]any)
			i, isNum := args[0].(float64)
			if ok && isNum && len(split) == 1 && len(sargs) == 2 {
				sep, _ := sargs[0].(string)
				parts := strings.Split(e.value(where, sargs[1]), sep)
				if int(i) >= len(parts) {
					e.t.Fatalf("condition %s: Fn::Select %d of %q: CloudFormation fails the stack", where, int(i), parts)
				}
				return parts[int(i)]
			}
		}
	}
	e.t.Fatalf("condition %s: Fn::Equals argument %v", where, v)
	return ""
}

// noValue stands for AWS::NoValue while resolving: the property or list element it is goes away.
type noValueT struct{}

var noValue = noValueT{}

// resolveIf replaces each Fn::If with the branch its condition picks, and drops AWS::NoValue.
func (st stack) resolveIf(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			if args, ok := x["Fn::If"].([]any); ok && len(args) == 3 {
				name, _ := args[0].(string)
				if st.conds[name] {
					return st.resolveIf(args[1])
				}
				return st.resolveIf(args[2])
			}
			if x["Ref"] == "AWS::NoValue" {
				return noValue
			}
		}
		out := map[string]any{}
		for k, e := range x {
			if r := st.resolveIf(e); r != noValue {
				out[k] = r
			}
		}
		return out
	case []any:
		out := []any{}
		for _, e := range x {
			if r := st.resolveIf(e); r != noValue {
				out = append(out, r)
			}
		}
		return out
	}
	return v
}

// references are the resources v names through Ref, Fn::GetAtt and Fn::Sub.
func (st stack) references(tpl template, v any) []string {
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, arg := range x {
				switch k {
				case "Ref":
					if name, _ := arg.(string); tpl.Parameters[name].Type == "" && !slices.Contains(pseudo, name) {
						refs = append(refs, name)
					}
				case "Fn::GetAtt":
					if parts, _ := arg.([]any); len(parts) == 2 {
						refs = append(refs, fmt.Sprint(parts[0]))
					}
				case "Fn::Sub":
					s, _ := arg.(string)
					for _, m := range subVar.FindAllStringSubmatch(s, -1) {
						name, _, _ := strings.Cut(m[1], ".")
						if _, ok := tpl.Resources[name]; ok {
							refs = append(refs, name)
						}
					}
				}
				walk(arg)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return refs
}

// checkResolves fails on anything in st that names a resource st does not have: a Ref, Fn::GetAtt,
// Fn::Sub or DependsOn to a resource a condition left out (CloudFormation refuses such a template for
// those parameter values), and on an intrinsic function the evaluation left behind.
func (st stack) checkResolves(t *testing.T, tpl template, what string) {
	t.Helper()
	check := func(where string, v any) {
		for _, ref := range st.references(tpl, v) {
			if _, ok := st.resources[ref]; !ok {
				t.Errorf("%s: %s names %s, which these parameters leave out", what, where, ref)
			}
		}
		b, _ := json.Marshal(v)
		if strings.Contains(string(b), `"Fn::If"`) || strings.Contains(string(b), `"AWS::NoValue"`) {
			t.Errorf("%s: %s keeps an unresolved Fn::If or AWS::NoValue: %s", what, where, b)
		}
	}
	for name, r := range st.resources {
		check(name, r.Properties)
		check(name+".Metadata", r.Metadata)
		for _, dep := range r.DependsOn {
			if _, ok := st.resources[dep]; !ok {
				t.Errorf("%s: %s depends on %s, which these parameters leave out", what, name, dep)
			}
		}
	}
	for name, o := range st.outputs {
		check("Outputs."+name, o)
	}
}

// consulClient lists the resources that exist for the stack's own Consul client, found by what they
// are rather than by their condition: a task definition running hashicorp/consul and its execution
// role, the service that runs it, a role allowed ec2:DescribeInstances (retry-join), the client's log
// group, an output naming any of them.
func (st stack) consulClient(tpl template) []string {
	var found []string
	for name, r := range st.resources {
		b, _ := json.Marshal(r.Properties)
		s := string(b)
		switch {
		case r.Type == "AWS::ECS::TaskDefinition" && strings.Contains(s, "hashicorp/consul"):
			found = append(found, name)
			// Its roles: the task role finds the servers (below), the execution role reads its secrets.
			var roles struct{ ExecutionRoleArn any }
			json.Unmarshal(b, &roles)
			found = append(found, st.references(tpl, roles.ExecutionRoleArn)...)
		case r.Type == "AWS::IAM::Role" && strings.Contains(s, "ec2:DescribeInstances"),
			r.Type == "AWS::Logs::LogGroup" && strings.Contains(s, "consul-client"):
			found = append(found, name)
		case r.Type == "AWS::ECS::Service":
			for _, ref := range st.references(tpl, r.Properties) {
				if td, ok := st.resources[ref]; ok && td.Type == "AWS::ECS::TaskDefinition" {
					b, _ := json.Marshal(td.Properties)
					if strings.Contains(string(b), "hashicorp/consul") {
						found = append(found, name)
					}
				}
			}
		}
	}
	for name, o := range st.outputs {
		for _, ref := range st.references(tpl, o) {
			if slices.Contains(found, ref) {
				found = append(found, "Outputs."+name)
			}
		}
	}
	slices.Sort(found)
	return found
}

// daemonEnv is the daemon container's environment as the stack sets it, a parameter's Ref replaced by
// the parameter's value.
func (st stack) daemonEnv(t *testing.T) map[string]any {
	t.Helper()
	td, ok := st.resources["RegistratorTaskDefinition"]
	if !ok {
		t.Fatal("no RegistratorTaskDefinition")
	}
	cds, _ := td.Properties["ContainerDefinitions"].([]any)
	c, _ := cds[0].(map[string]any)
	env := map[string]any{}
	list, _ := c["Environment"].([]any)
	for _, e := range list {
		kv, _ := e.(map[string]any)
		v := kv["Value"]
		if ref, ok := v.(map[string]any); ok && len(ref) == 1 {
			if name, ok := ref["Ref"].(string); ok {
				if p, ok := st.params[name]; ok {
					v = p
				}
			}
		}
		env[fmt.Sprint(kv["Name"])] = v
	}
	return env
}

// required are values for the parameters without a default.
var required = map[string]string{"ClusterName": "prod", "RegistratorImage": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/ecs-registrator:1.0.0"}

// brokenRules are the descriptions of the template's Rules assertions that the parameter values
// break: CloudFormation refuses to create or update the stack with them.
func brokenRules(t *testing.T, tpl template, given map[string]string) []string {
	t.Helper()
	st := instantiate(t, tpl, given)
	ev := condEval{t: t, tpl: tpl, params: st.params, done: map[string]bool{}, busy: map[string]bool{}}
	var broken []string
	for name, r := range tpl.Rules {
		if r.RuleCondition != nil && !ev.eval("Rules."+name, r.RuleCondition) {
			continue
		}
		for _, a := range r.Assertions {
			if !ev.eval("Rules."+name, a.Assert) {
				broken = append(broken, a.AssertDescription)
			}
		}
	}
	return broken
}

var regexpRef = regexp.MustCompile(`"Ref":"([A-Za-z0-9]+)"`)

// samples are values of the parameters whose AllowedPattern a made-up value would not match: secrets'
// ARNs of both services (an SSM parameter ARN of a hierarchical name among them), a KMS key, and the
// CA's SSM parameter name in both its forms, hierarchical and flat.
var samples = map[string][]string{
	"ConsulTokenSecretArn":      {"arn:aws:secretsmanager:eu-west-1:111122223333:secret:consul/ecs-registrator-AbCdEf"},
	"ConsulAgentTokenSecretArn": {"arn:aws:ssm:eu-west-1:111122223333:parameter/consul/agent-token"},
	"ConsulGossipKeySecretArn":  {"arn:aws:secretsmanager:eu-west-1:111122223333:secret:consul/gossip-key-AbCdEf"},
	"ConsulCACertParameter":     {"/consul/ca", "consul-ca"},
	"SecretsKmsKeyArn":          {"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
}

// secured gives the parameters the Rules require for given's choices: the stack's client's secrets
// with ConsulClient=deploy, the server ID with IAM login.
func secured(given map[string]string) {
	if given["ConsulClient"] != "existing" {
		given["ConsulRetryJoinTagValue"] = "prod"
		for _, p := range []string{"ConsulAgentTokenSecretArn", "ConsulGossipKeySecretArn", "ConsulCACertParameter"} {
			if _, ok := given[p]; !ok {
				given[p] = samples[p][0]
			}
		}
	}
	if given["ConsulIamAuthMethod"] != "" {
		given["ConsulIamServerId"] = "consul.example.com"
	}
}

// switches are the parameters the Conditions read, each with the values that flip them: its allowed
// values, or empty and set (its samples when it has some).
func switches(t *testing.T, tpl template) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	b, _ := json.Marshal(tpl.Conditions)
	for _, m := range regexpRef.FindAllStringSubmatch(string(b), -1) {
		p, ok := tpl.Parameters[m[1]]
		if !ok {
			t.Fatalf("a condition reads %s, which is not a parameter", m[1])
		}
		switch {
		case len(p.AllowedValues) > 0:
			out[m[1]] = p.AllowedValues
		case samples[m[1]] != nil:
			out[m[1]] = append([]string{""}, samples[m[1]]...)
		default:
			out[m[1]] = []string{"", "set-" + m[1]}
		}
	}
	return out
}

// every calls f with each combination of the switches' values (and the required parameters).
func every(sw map[string][]string, f func(map[string]string)) {
	names := slices.Sorted(maps.Keys(sw))
	var rec func(i int, given map[string]string)
	rec = func(i int, given map[string]string) {
		if i == len(names) {
			f(maps.Clone(given))
			return
		}
		for _, v := range sw[names[i]] {
			given[names[i]] = v
			rec(i+1, given)
		}
	}
	given := maps.Clone(required)
	rec(0, given)
}

// For every combination of the values the Conditions read, the Rules refuse exactly the insecure
// ones (the stack's client without its token, gossip key or CA; no credential for the daemon where the
// agent denies by default; two credentials), and the stack CloudFormation would create from the others
// names only resources it has, its ECS resources decode into the SDK's types, the Consul client's
// resources exist exactly with ConsulClient=deploy, the daemon talks to the stack's client or to
// ConsulAgentAddress accordingly, and each execution role reads exactly its own task's secrets.
func TestCloudFormationConditionsEveryCombination(t *testing.T) {
	tpl := loadTemplate(t)
	sw := switches(t, tpl)
	for _, must := range []string{"ConsulClient", "EnableEcsApi", "ConsulTokenSecretArn", "ConsulIamAuthMethod",
		"ConsulAgentTokenSecretArn", "ConsulGossipKeySecretArn", "ConsulCACertParameter", "SecretsKmsKeyArn", "ConsulApiOnDockerBridge"} {
		if _, ok := sw[must]; !ok {
			t.Errorf("no condition reads %s", must)
		}
	}
	n, refused := 0, 0
	every(sw, func(given map[string]string) {
		n++
		given["ConsulAgentAddress"] = "127.0.0.1:18500"
		own := given["ConsulClient"] == "deploy"
		secured(given)
		what := fmt.Sprint(given)
		token, iam := given["ConsulTokenSecretArn"] != "", given["ConsulIamAuthMethod"] != ""
		insecure := token && iam || own && (given["ConsulAgentTokenSecretArn"] == "" || given["ConsulGossipKeySecretArn"] == "" ||
			given["ConsulCACertParameter"] == "" || !token && !iam)
		broken := brokenRules(t, tpl, given)
		if insecure {
			refused++
			if len(broken) == 0 {
				t.Errorf("%s: the Rules accept it", what)
			}
			return
		}
		if len(broken) != 0 {
			t.Errorf("%s: the Rules refuse it: %v", what, broken)
		}
		st := instantiate(t, tpl, given)
		st.checkResolves(t, tpl, what)
		counts := map[string]int{}
		for _, name := range slices.Sorted(maps.Keys(st.resources)) {
			r := st.resources[name]
			counts[r.Type]++
			b, _ := json.Marshal(resolve(r.Properties))
			switch r.Type {
			case "AWS::ECS::TaskDefinition":
				var td ecs.RegisterTaskDefinitionInput
				decodeStrict(t, b, &td)
			case "AWS::ECS::Service":
				var svc ecs.CreateServiceInput
				decodeStrict(t, b, &svc)
			}
		}
		client := st.consulClient(tpl)
		wantClient := []string{}
		if own {
			wantClient = []string{"ConsulExecutionRole", "ConsulLogGroup", "ConsulService", "ConsulTaskDefinition", "ConsulTaskRole", "Outputs.ConsulServiceArn"}
		}
		if !slices.Equal(client, wantClient) {
			t.Errorf("%s: the Consul client's resources are %v, want %v", what, client, wantClient)
		}
		want := map[bool]int{true: 2, false: 1}[own]
		if counts["AWS::ECS::TaskDefinition"] != want || counts["AWS::ECS::Service"] != want {
			t.Errorf("%s: %d task definitions and %d services, want %d of each", what, counts["AWS::ECS::TaskDefinition"], counts["AWS::ECS::Service"], want)
		}
		addr := st.daemonEnv(t)["REGISTRATOR_CONSUL"]
		if wantAddr := map[bool]string{true: "127.0.0.1:8500", false: "127.0.0.1:18500"}[own]; addr != wantAddr {
			t.Errorf("%s: REGISTRATOR_CONSUL %v, want %s", what, addr, wantAddr)
		}
		st.checkExecutionRoles(t, what)
	})
	if n < 512 || refused == 0 || refused == n {
		t.Errorf("%d combinations, %d of them refused", n, refused)
	}
}

// With ConsulClient=existing the stack deploys ecs-registrator alone, pointed at the hosts' agent.
func TestCloudFormationExistingAgents(t *testing.T) {
	tpl := loadTemplate(t)
	given := maps.Clone(required)
	given["ConsulClient"] = "existing"
	given["ConsulAgentTokenSecretArn"] = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:agent"
	given["ConsulGossipKeySecretArn"] = samples["ConsulGossipKeySecretArn"][0]
	given["ConsulCACertParameter"] = "/consul/ca"
	given["SecretsKmsKeyArn"] = samples["SecretsKmsKeyArn"][0]
	if broken := brokenRules(t, tpl, given); len(broken) != 0 {
		t.Errorf("the Rules refuse an existing agent without the client's parameters: %v", broken)
	}
	st := instantiate(t, tpl, given)
	st.checkResolves(t, tpl, "existing")
	for name, r := range st.resources {
		switch r.Type {
		case "AWS::ECS::TaskDefinition", "AWS::ECS::Service":
			if !strings.HasPrefix(name, "Registrator") {
				t.Errorf("%s %s is deployed for an existing agent", r.Type, name)
			}
		}
	}
	if got := st.daemonEnv(t)["REGISTRATOR_CONSUL"]; got != "127.0.0.1:8500" {
		t.Errorf("REGISTRATOR_CONSUL %v, want ConsulAgentAddress's default 127.0.0.1:8500", got)
	}
	if _, ok := st.outputs["ConsulServiceArn"]; ok {
		t.Error("an output names the Consul client's service")
	}
	if _, ok := st.resources["ConsulExecutionRole"]; ok {
		t.Error("the stack creates the Consul client's execution role for an agent it does not run")
	}
	// No token, no IAM login: the hosts' agents may be open. The daemon's execution role then reads
	// nothing, and may decrypt nothing with the key.
	if reads, decrypts := st.rolePermissions(t, "RegistratorExecutionRole"); len(reads) != 0 || len(decrypts) != 0 {
		t.Errorf("the daemon's execution role reads %v and decrypts with %v, for a daemon without secrets", reads, decrypts)
	}
	st.checkExecutionRoles(t, "existing")
}

// With ConsulClient=deploy (the default) the stack is what it was: both services, the client's
// resources, the daemon on 127.0.0.1:8500, and the daemon's service created after the client's and
// deleted before it.
func TestCloudFormationOwnClient(t *testing.T) {
	tpl := loadTemplate(t)
	if p := tpl.Parameters["ConsulClient"]; p.Default != "deploy" {
		t.Errorf("ConsulClient defaults to %v, want deploy: the stack keeps deploying its own client unless told otherwise", p.Default)
	}
	given := maps.Clone(required)
	// The defaults alone: no server to join, no token, gossip key or CA for the client, no credential
	// for the daemon.
	if broken := brokenRules(t, tpl, given); len(broken) != 5 {
		t.Errorf("with the defaults the Rules break %q, want five assertions: the client would find no server and run an open agent", broken)
	}
	given["ConsulIamAuthMethod"] = "ecs-registrator"
	secured(given)
	st := instantiate(t, tpl, given)
	st.checkResolves(t, tpl, "deploy")
	for _, name := range []string{"RegistratorLogGroup", "ConsulLogGroup", "RegistratorExecutionRole", "ConsulExecutionRole", "RegistratorTaskRole",
		"ConsulTaskRole", "RegistratorTaskDefinition", "RegistratorService", "ConsulTaskDefinition", "ConsulService"} {
		if _, ok := st.resources[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	if got := st.daemonEnv(t)["REGISTRATOR_CONSUL"]; got != "127.0.0.1:8500" {
		t.Errorf("REGISTRATOR_CONSUL %v, want the stack's client on 127.0.0.1:8500", got)
	}
	if refs := st.references(tpl, st.resources["RegistratorService"].Metadata); !slices.Contains(refs, "ConsulService") {
		t.Errorf("RegistratorService does not depend on ConsulService (Metadata %v)", st.resources["RegistratorService"].Metadata)
	}
	// The daemon's task role is generated: the auth method binds it by the output's exact ARN.
	if got := slices.Sorted(maps.Keys(st.outputs)); !slices.Equal(got, []string{"ConsulServiceArn", "RegistratorServiceArn", "RegistratorTaskRoleArn"}) {
		t.Errorf("outputs %v", got)
	}
}

// Each Rule the secured stack adds refuses its case alone, saying which parameter is missing.
func TestCloudFormationRulesRefuseAnOpenClient(t *testing.T) {
	tpl := loadTemplate(t)
	base := maps.Clone(required)
	base["ConsulIamAuthMethod"] = "ecs-registrator"
	secured(base)
	if broken := brokenRules(t, tpl, base); len(broken) != 0 {
		t.Fatalf("a secured stack is refused: %v", broken)
	}
	for _, c := range []struct {
		set, to, names string
	}{
		{"ConsulAgentTokenSecretArn", "", "ConsulAgentTokenSecretArn"},
		{"ConsulGossipKeySecretArn", "", "ConsulGossipKeySecretArn"},
		{"ConsulCACertParameter", "", "ConsulCACertParameter"},
		{"ConsulIamAuthMethod", "", "ConsulTokenSecretArn"},
		{"ConsulIamServerId", "", "ConsulIamServerId"},
		{"ConsulTokenSecretArn", samples["ConsulTokenSecretArn"][0], "not both"},
	} {
		given := maps.Clone(base)
		given[c.set] = c.to
		broken := brokenRules(t, tpl, given)
		if len(broken) != 1 || !strings.Contains(broken[0], c.names) {
			t.Errorf("%s=%q: the Rules break %q, want one assertion naming %s", c.set, c.to, broken, c.names)
		}
	}
}
