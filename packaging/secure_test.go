package packaging

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// The secured reference datacenter (packaging/README.md, "A secured datacenter"): the packaged Consul
// client enforces ACLs, encrypts gossip and verifies the servers; each task's execution role reads its
// own secrets only; SSM parameter ARNs are well-formed; no task reads instance metadata.

// pseudoValues are the pseudo parameters' values for evaluating the stack's strings.
var pseudoValues = map[string]string{
	"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "111122223333",
	"AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "ecs-registrator-prod",
}

// str evaluates v to the string CloudFormation would make of it: a literal, a Ref to a parameter or
// a pseudo parameter, Fn::Sub over those, Fn::Join, and Fn::Select of a list (Fn::Split or literal).
// Anything else (a resource's attribute) fails the test.
func (st stack) str(t *testing.T, v any) string {
	t.Helper()
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if len(x) != 1 {
			break
		}
		for fn, arg := range x {
			switch fn {
			case "Ref":
				name, _ := arg.(string)
				if val, ok := st.params[name]; ok {
					return val
				}
				if val, ok := pseudoValues[name]; ok {
					return val
				}
			case "Fn::Sub":
				s, _ := arg.(string)
				return subVar.ReplaceAllStringFunc(s, func(m string) string {
					return st.str(t, map[string]any{"Ref": m[2 : len(m)-1]})
				})
			case "Fn::Join":
				args, _ := arg.([]any)
				if len(args) == 2 {
					sep, _ := args[0].(string)
					return strings.Join(st.list(t, args[1]), sep)
				}
			case "Fn::Select":
				args, _ := arg.([]any)
				if i, ok := args[0].(float64); ok && len(args) == 2 {
					l := st.list(t, args[1])
					if int(i) < len(l) {
						return l[int(i)]
					}
				}
			}
		}
	}
	t.Fatalf("cannot evaluate %v to a string", v)
	return ""
}

// list evaluates v to a list of strings: a literal list or Fn::Split.
func (st stack) list(t *testing.T, v any) []string {
	t.Helper()
	switch x := v.(type) {
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, st.str(t, e))
		}
		return out
	case map[string]any:
		if args, ok := x["Fn::Split"].([]any); ok && len(x) == 1 && len(args) == 2 {
			sep, _ := args[0].(string)
			return strings.Split(st.str(t, args[1]), sep)
		}
	}
	t.Fatalf("cannot evaluate %v to a list", v)
	return nil
}

// strings are v's strings, a single one or a list.
func (st stack) strs(t *testing.T, v any) []string {
	t.Helper()
	if l, ok := v.([]any); ok {
		return st.list(t, l)
	}
	return []string{st.str(t, v)}
}

// secretReads are the actions an execution role uses to fetch a task's secrets for ECS.
var secretReads = []string{"secretsmanager:GetSecretValue", "ssm:GetParameters"}

// rolePermissions are what the role's inline policies allow: the secrets it may read and the keys it
// may decrypt with, evaluated. An inline statement that allows anything else fails the test: the
// managed AmazonECSTaskExecutionRolePolicy covers image pulls and logs.
func (st stack) rolePermissions(t *testing.T, role string) (reads, decrypts []string) {
	t.Helper()
	r, ok := st.resources[role]
	if !ok || r.Type != "AWS::IAM::Role" {
		t.Fatalf("no role %s", role)
	}
	policies, _ := r.Properties["Policies"].([]any)
	for _, p := range policies {
		doc, _ := p.(map[string]any)["PolicyDocument"].(map[string]any)
		statements, _ := doc["Statement"].([]any)
		for _, s := range statements {
			stmt, _ := s.(map[string]any)
			actions := st.strs(t, stmt["Action"])
			resources := st.strs(t, stmt["Resource"])
			switch {
			case stmt["Effect"] != "Allow" || stmt["Condition"] != nil || stmt["NotResource"] != nil:
				t.Errorf("%s: statement %v", role, stmt)
			case slices.Equal(actions, secretReads):
				reads = append(reads, resources...)
			case slices.Equal(actions, []string{"kms:Decrypt"}):
				decrypts = append(decrypts, resources...)
			default:
				t.Errorf("%s allows %v on %v: an execution role reads secrets and decrypts them, nothing more", role, actions, resources)
			}
		}
	}
	slices.Sort(reads)
	slices.Sort(decrypts)
	return reads, decrypts
}

// checkExecutionRoles asserts, for the stack st, that every task definition has an execution role of
// its own, that role may read exactly the secrets its containers ask ECS for (each a well-formed ARN),
// and it may decrypt with SecretsKmsKeyArn exactly when that is given and the task has secrets.
func (st stack) checkExecutionRoles(t *testing.T, what string) {
	t.Helper()
	owner := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(st.resources)) {
		r := st.resources[name]
		if r.Type != "AWS::ECS::TaskDefinition" {
			continue
		}
		ref, _ := r.Properties["ExecutionRoleArn"].(map[string]any)
		att, _ := ref["Fn::GetAtt"].([]any)
		if len(att) != 2 || att[1] != "Arn" {
			t.Errorf("%s: %s: ExecutionRoleArn %v is not a role of the stack", what, name, r.Properties["ExecutionRoleArn"])
			continue
		}
		role := att[0].(string)
		if other, ok := owner[role]; ok {
			t.Errorf("%s: %s and %s share the execution role %s, so each may read the other's secrets", what, name, other, role)
		}
		owner[role] = name
		var want []string
		cds, _ := r.Properties["ContainerDefinitions"].([]any)
		for _, cd := range cds {
			secrets, _ := cd.(map[string]any)["Secrets"].([]any)
			for _, s := range secrets {
				arn := st.str(t, s.(map[string]any)["ValueFrom"])
				checkSecretARN(t, fmt.Sprintf("%s: %s", what, name), arn)
				want = append(want, arn)
			}
		}
		slices.Sort(want)
		reads, decrypts := st.rolePermissions(t, role)
		if !slices.Equal(reads, want) {
			t.Errorf("%s: %s's execution role %s reads %q, want exactly its secrets %q", what, name, role, reads, want)
		}
		var wantKeys []string
		if key := st.params["SecretsKmsKeyArn"]; key != "" && len(want) > 0 {
			wantKeys = []string{key}
		}
		if !slices.Equal(decrypts, wantKeys) {
			t.Errorf("%s: %s's execution role %s may decrypt with %q, want %q", what, name, role, decrypts, wantKeys)
		}
	}
}

var (
	// ssmParameterARN is the ARN of an SSM parameter: parameter/ and the name without its leading
	// slash (arn:...:parameter/consul/ca for /consul/ca, arn:...:parameter/consul-ca for consul-ca).
	ssmParameterARN = regexp.MustCompile(`^arn:aws:ssm:eu-west-1:111122223333:parameter/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)
	secretARN       = regexp.MustCompile(`^arn:aws:secretsmanager:eu-west-1:111122223333:secret:[A-Za-z0-9/_+=.@-]+$`)
)

func checkSecretARN(t *testing.T, what, arn string) {
	t.Helper()
	if !ssmParameterARN.MatchString(arn) && !secretARN.MatchString(arn) {
		t.Errorf("%s: %q is not the ARN of a secret or an SSM parameter", what, arn)
	}
}

// Every SSM parameter ARN the stack builds is well-formed for both forms of the CA's parameter name,
// hierarchical (/consul/ca) and flat (consul-ca), and is the ARN of that parameter; the parameters'
// AllowedPattern takes those two forms and refuses a name CloudFormation would make a wrong ARN of.
func TestSSMParameterARNs(t *testing.T) {
	tpl := loadTemplate(t)
	for _, c := range []struct{ name, arn string }{
		{"/consul/ca", "arn:aws:ssm:eu-west-1:111122223333:parameter/consul/ca"},
		{"/consul-ca", "arn:aws:ssm:eu-west-1:111122223333:parameter/consul-ca"},
		{"consul-ca", "arn:aws:ssm:eu-west-1:111122223333:parameter/consul-ca"},
		{"/prod/consul/tls/ca.pem", "arn:aws:ssm:eu-west-1:111122223333:parameter/prod/consul/tls/ca.pem"},
	} {
		given := maps.Clone(required)
		given["ConsulIamAuthMethod"] = "ecs-registrator"
		given["ConsulCACertParameter"] = c.name
		secured(given)
		st := instantiate(t, tpl, given)
		var arns []string
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				if b, _ := json.Marshal(x); len(x) == 1 && (x["Fn::Sub"] != nil || x["Fn::Join"] != nil) && strings.Contains(string(b), ":ssm:") {
					arns = append(arns, st.str(t, x))
					return
				}
				for _, e := range x {
					walk(e)
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		for _, r := range st.resources {
			walk(r.Properties)
		}
		// The client's execution role and its task definition's secret.
		if len(arns) != 2 {
			t.Errorf("%s: the stack builds %d SSM ARNs %q, want 2: the role's and the task's", c.name, len(arns), arns)
		}
		for _, arn := range arns {
			if arn != c.arn || !ssmParameterARN.MatchString(arn) {
				t.Errorf("%s: ARN %q, want %q", c.name, arn, c.arn)
			}
		}
		st.checkExecutionRoles(t, c.name)
	}
	ca := regexp.MustCompile(tpl.Parameters["ConsulCACertParameter"].AllowedPattern)
	for _, bad := range []string{"consul/ca", "//consul/ca", "/consul//ca", "/consul/ca/", "arn:aws:ssm:eu-west-1:111122223333:parameter/consul/ca"} {
		if ca.MatchString(bad) {
			t.Errorf("ConsulCACertParameter takes %q", bad)
		}
	}
	for _, p := range []string{"ConsulTokenSecretArn", "ConsulAgentTokenSecretArn", "ConsulGossipKeySecretArn"} {
		re := regexp.MustCompile(tpl.Parameters[p].AllowedPattern)
		for _, good := range []string{"", "arn:aws:ssm:eu-west-1:111122223333:parameter/consul/token", "arn:aws:ssm:eu-west-1:111122223333:parameter/consul-token",
			"arn:aws:secretsmanager:eu-west-1:111122223333:secret:consul/token-AbCdEf", "arn:aws-cn:secretsmanager:cn-north-1:111122223333:secret:t-AbCdEf"} {
			if !re.MatchString(good) {
				t.Errorf("%s refuses %q", p, good)
			}
		}
		for _, bad := range []string{"/consul/token", "consul-token", "arn:aws:ssm:eu-west-1:111122223333:parameter//consul/token", "*"} {
			if re.MatchString(bad) {
				t.Errorf("%s takes %q", p, bad)
			}
		}
	}
}

// agentConfig is the configuration the Consul client's entry point writes, every key it may hold:
// decoded strictly, a key the test does not know fails it.
type agentConfig struct {
	LeaveOnTerminate *bool  `json:"leave_on_terminate"`
	Encrypt          string `json:"encrypt"`
	ACL              struct {
		Enabled                bool   `json:"enabled"`
		DefaultPolicy          string `json:"default_policy"`
		EnableTokenPersistence bool   `json:"enable_token_persistence"`
		Tokens                 struct {
			Agent string `json:"agent"`
		} `json:"tokens"`
	} `json:"acl"`
	AutoEncrypt struct {
		TLS bool `json:"tls"`
	} `json:"auto_encrypt"`
	TLS struct {
		Defaults struct {
			CAFile string `json:"ca_file"`
		} `json:"defaults"`
		InternalRPC struct {
			VerifyOutgoing       bool `json:"verify_outgoing"`
			VerifyServerHostname bool `json:"verify_server_hostname"`
		} `json:"internal_rpc"`
	} `json:"tls"`
	Ports struct {
		GRPC int `json:"grpc"`
	} `json:"ports"`
}

// The secrets the client's container gets from ECS, as the test gives them.
var clientSecrets = map[string]string{
	"CONSUL_AGENT_TOKEN": "3f2e1d0c-aaaa-4bbb-8ccc-000000000001",
	"CONSUL_GOSSIP_KEY":  "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=",
	"CONSUL_CA_PEM":      "-----BEGIN CERTIFICATE-----\nMIIBstand-in\n-----END CERTIFICATE-----",
}

// runEntryPoint runs the Consul client container's entry point as Docker would (/bin/sh -c script
// $0 command...), with env as the container's environment, the config directory a temporary one and
// the image's docker-entrypoint.sh a stand-in that records the arguments it would start the agent
// with. started is false when the script stopped before starting the agent.
func runEntryPoint(t *testing.T, entryPoint, command []string, env map[string]string) (cfg agentConfig, args []string, dir string, started bool) {
	t.Helper()
	if len(entryPoint) != 4 || entryPoint[0] != "/bin/sh" || entryPoint[1] != "-c" {
		t.Fatalf("entry point %q: want /bin/sh -c <script> <name>", entryPoint)
	}
	dir = t.TempDir()
	bin := t.TempDir()
	stub := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + filepath.Join(dir, "agent-args") + "\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-entrypoint.sh"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(entryPoint[2], "dir=/consul/config\n") {
		t.Fatalf("the script does not write to /consul/config, the image's config directory: %s", entryPoint[2])
	}
	script := strings.ReplaceAll(entryPoint[2], "/consul/config", dir)
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, entryPoint[3]}, command...)...)
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	b, rerr := os.ReadFile(filepath.Join(dir, "agent-args"))
	if rerr != nil {
		if err == nil {
			t.Fatalf("the entry point exited 0 without starting the agent:\n%s", out)
		}
		return cfg, nil, dir, false
	}
	if err != nil {
		t.Fatalf("the entry point: %v\n%s", err, out)
	}
	args = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	decodeStrict(t, read(t, filepath.Join(dir, "ecs.json")), &cfg)
	return cfg, args, dir, true
}

// checkClientConfig asserts what every packaged Consul client runs with: ACLs on and denying by
// default with its own token (persisted when set through the API), gossip encrypted with the key,
// TLS to the servers with their certificates' host names verified against the CA given, its own
// certificate by auto_encrypt, no leave on SIGTERM, gRPC for Envoy, and an HTTP API on loopback (and
// docker0 when asked): never the host's VPC address, where the plain-HTTP API would carry tokens
// across the network.
func checkClientConfig(t *testing.T, what string, entryPoint, command []string, bridge bool) {
	t.Helper()
	cfg, args, dir, started := runEntryPoint(t, entryPoint, command, clientSecrets)
	if !started {
		t.Fatalf("%s: the agent did not start with all its secrets", what)
	}
	if !cfg.ACL.Enabled || cfg.ACL.DefaultPolicy != "deny" || !cfg.ACL.EnableTokenPersistence || cfg.ACL.Tokens.Agent != clientSecrets["CONSUL_AGENT_TOKEN"] {
		t.Errorf("%s: acl %+v, want enabled, default_policy deny, enable_token_persistence and the agent token from CONSUL_AGENT_TOKEN", what, cfg.ACL)
	}
	if cfg.Encrypt != clientSecrets["CONSUL_GOSSIP_KEY"] {
		t.Errorf("%s: encrypt %q, want the key from CONSUL_GOSSIP_KEY", what, cfg.Encrypt)
	}
	if !cfg.AutoEncrypt.TLS || !cfg.TLS.InternalRPC.VerifyOutgoing || !cfg.TLS.InternalRPC.VerifyServerHostname {
		t.Errorf("%s: auto_encrypt %+v, tls %+v: want auto_encrypt.tls and tls.internal_rpc's verify_outgoing and verify_server_hostname", what, cfg.AutoEncrypt, cfg.TLS)
	}
	if ca, err := os.ReadFile(cfg.TLS.Defaults.CAFile); err != nil || string(ca) != clientSecrets["CONSUL_CA_PEM"]+"\n" || filepath.Dir(cfg.TLS.Defaults.CAFile) != dir {
		t.Errorf("%s: tls.defaults.ca_file %q: %v %q, want the PEM from CONSUL_CA_PEM", what, cfg.TLS.Defaults.CAFile, err, ca)
	}
	if cfg.LeaveOnTerminate == nil || *cfg.LeaveOnTerminate {
		t.Errorf("%s: leave_on_terminate %v, want false (packaging/README.md, Rollout and rollback)", what, cfg.LeaveOnTerminate)
	}
	if cfg.Ports.GRPC != 8502 {
		t.Errorf("%s: ports.grpc %d, want 8502: Envoy's xDS", what, cfg.Ports.GRPC)
	}
	if len(args) == 0 || args[0] != "agent" {
		t.Fatalf("%s: docker-entrypoint.sh %q, want agent first", what, args)
	}
	wantClient := "-client=127.0.0.1"
	if bridge {
		wantClient += ` {{ GetInterfaceIP "docker0" }}`
	}
	var clients []string
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-client") {
			clients = append(clients, a)
		}
		// Nothing on the command line may override the file: no other configuration, no dev mode.
		for _, p := range []string{"-hcl", "-config", "-dev", "-encrypt", "-server"} {
			if strings.HasPrefix(a, p) {
				t.Errorf("%s: the agent's argument %q overrides its configuration", what, a)
			}
		}
	}
	if !slices.Equal(clients, []string{wantClient}) {
		t.Errorf("%s: %q, want %q: the HTTP API is plain HTTP, on loopback (docker0 with ConsulApiOnDockerBridge)", what, clients, wantClient)
	}
	// Fail closed: without any one of its secrets the agent does not start.
	for k := range clientSecrets {
		env := maps.Clone(clientSecrets)
		delete(env, k)
		if _, _, _, started := runEntryPoint(t, entryPoint, command, env); started {
			t.Errorf("%s: the agent starts without %s", what, k)
		}
	}
}

// checkClientContainer asserts the container around the script: the secrets the script reads, a health
// check that passes only with the agent token (anonymous sees no members when ACLs deny), and time to
// stop.
func checkClientContainer(t *testing.T, what string, secretNames []string, health []string, stopTimeout *int32) {
	t.Helper()
	slices.Sort(secretNames)
	if want := slices.Sorted(maps.Keys(clientSecrets)); !slices.Equal(secretNames, want) {
		t.Errorf("%s: secrets %q, want %q", what, secretNames, want)
	}
	if len(health) != 2 || health[0] != "CMD-SHELL" || !strings.Contains(health[1], `CONSUL_HTTP_TOKEN="$CONSUL_AGENT_TOKEN"`) || !strings.Contains(health[1], "consul members") {
		t.Errorf("%s: health check %q: with default deny, consul members without a token lists nobody and exits 2", what, health)
	}
	if stopTimeout == nil || *stopTimeout < 10 {
		t.Errorf("%s: stopTimeout %v, want 10 s or more for the agent's graceful shutdown", what, stopTimeout)
	}
}

// Every packaged Consul client, the CLI's and the stack's (with the API on docker0 and without),
// runs the same entry point, which writes a configuration with ACLs on and denying by default.
func TestConsulClientConfigsEnforceACLs(t *testing.T) {
	var td ecs.RegisterTaskDefinitionInput
	decodeStrict(t, read(t, "ecs/consul-client-task-definition.json"), &td)
	cd := td.ContainerDefinitions[0]
	checkClientConfig(t, "ecs/consul-client-task-definition.json", cd.EntryPoint, cd.Command, false)
	var names []string
	for _, s := range cd.Secrets {
		names = append(names, *s.Name)
		checkSecretARN(t, "ecs/consul-client-task-definition.json", *s.ValueFrom)
	}
	checkClientContainer(t, "ecs/consul-client-task-definition.json", names, cd.HealthCheck.Command, cd.StopTimeout)

	tpl := loadTemplate(t)
	for _, bridge := range []string{"false", "true"} {
		given := maps.Clone(required)
		given["ConsulTokenSecretArn"] = samples["ConsulTokenSecretArn"][0]
		given["ConsulApiOnDockerBridge"] = bridge
		secured(given)
		st := instantiate(t, tpl, given)
		what := "stack, ConsulApiOnDockerBridge=" + bridge
		cds, _ := st.resources["ConsulTaskDefinition"].Properties["ContainerDefinitions"].([]any)
		c, _ := cds[0].(map[string]any)
		entryPoint, command := st.list(t, c["EntryPoint"]), st.list(t, c["Command"])
		if entryPoint[2] != cd.EntryPoint[2] {
			t.Errorf("%s: the entry point's script differs from ecs/consul-client-task-definition.json's", what)
		}
		checkClientConfig(t, what, entryPoint, command, bridge == "true")
		var names []string
		for _, s := range c["Secrets"].([]any) {
			names = append(names, s.(map[string]any)["Name"].(string))
		}
		hc, _ := c["HealthCheck"].(map[string]any)
		var stop *int32
		if f, ok := c["StopTimeout"].(float64); ok {
			stop = new(int32(f))
		}
		checkClientContainer(t, what, names, st.list(t, hc["Command"]), stop)
	}
}

// The CLI files: the daemon's and the client's task definitions have execution roles of their own,
// the daemon's asks ECS for no secret (it logs in with its task role), and the client's secrets are
// well-formed ARNs. packaging/README.md gives each role exactly those.
func TestCLIExecutionRoles(t *testing.T) {
	var daemonTD, clientTD ecs.RegisterTaskDefinitionInput
	decodeStrict(t, read(t, "ecs/ecs-registrator-task-definition.json"), &daemonTD)
	decodeStrict(t, read(t, "ecs/consul-client-task-definition.json"), &clientTD)
	if daemonTD.ExecutionRoleArn == nil || clientTD.ExecutionRoleArn == nil || *daemonTD.ExecutionRoleArn == *clientTD.ExecutionRoleArn {
		t.Errorf("execution roles %v and %v: each task needs its own, so that neither reads the other's secrets", daemonTD.ExecutionRoleArn, clientTD.ExecutionRoleArn)
	}
	env := map[string]string{}
	for _, kv := range daemonTD.ContainerDefinitions[0].Environment {
		env[*kv.Name] = *kv.Value
	}
	if len(daemonTD.ContainerDefinitions[0].Secrets) != 0 || env["REGISTRATOR_CONSUL_IAM_AUTH_METHOD"] == "" || env["REGISTRATOR_CONSUL_IAM_SERVER_ID"] == "" || daemonTD.TaskRoleArn == nil {
		t.Errorf("the daemon's CLI task definition: secrets %v, IAM login %q with server ID %q, task role %v: want IAM login with a server ID and no secret",
			daemonTD.ContainerDefinitions[0].Secrets, env["REGISTRATOR_CONSUL_IAM_AUTH_METHOD"], env["REGISTRATOR_CONSUL_IAM_SERVER_ID"], daemonTD.TaskRoleArn)
	}
	readme := string(read(t, "README.md"))
	_, role, _ := strings.Cut(*clientTD.ExecutionRoleArn, ":role/")
	for _, s := range clientTD.ContainerDefinitions[0].Secrets {
		if !strings.Contains(readme, *s.ValueFrom) {
			t.Errorf("packaging/README.md does not give %s the secret %s", role, *s.ValueFrom)
		}
	}
}

// metadataTargets are what a command reading instance metadata names.
var metadataTargets = []string{"169.254.169.254", "fd00:ec2::254", "meta-data/", "latest/api/token"}

// No packaged task definition reads instance metadata from inside a task: a task then runs where
// ECS_AWSVPC_BLOCK_IMDS=true or a hop limit of 1 keeps tasks from it. (The daemon reads it itself, in
// Go, in host networking; no command line of a task definition does.)
func TestNoTaskReadsInstanceMetadata(t *testing.T) {
	files, _ := filepath.Glob("ecs/*task-definition.json")
	canary, _ := filepath.Glob("ecs/canary/*task-definition.json")
	check := func(what string, cds any) {
		b, _ := json.Marshal(cds)
		for _, target := range metadataTargets {
			if strings.Contains(string(b), target) {
				t.Errorf("%s: a container names %s", what, target)
			}
		}
	}
	for _, f := range append(files, canary...) {
		var td ecs.RegisterTaskDefinitionInput
		decodeStrict(t, read(t, f), &td)
		check(f, td.ContainerDefinitions)
	}
	tpl := loadTemplate(t)
	for name, r := range tpl.Resources {
		if r.Type == "AWS::ECS::TaskDefinition" {
			check(name, r.Properties["ContainerDefinitions"])
		}
	}
}
