package packaging

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// The AWS tools' own validators, where the machine has them: cfn-lint for the template, and
// botocore's parameter validation (what the aws CLI runs before a call) for the JSON the aws ecs
// commands of packaging/README.md take. scripts/setup.sh installs neither (Python packages come from
// PyPI), so without them these skip, in CI too; the SDK-type tests above run everywhere.

func TestCfnLint(t *testing.T) {
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Skip("no cfn-lint")
	}
	if out, err := exec.Command(lint, "cloudformation/ecs-registrator.json").CombinedOutput(); err != nil {
		t.Errorf("cfn-lint: %v\n%s", err, out)
	}
}

// botocoreCheck validates each file against the input shape of the ECS operation it is for: an
// update (service, no serviceName), a task definition, or a service to create.
const botocoreCheck = `
import json, sys
try:
    import botocore.session
    from botocore.validate import validate_parameters
except ImportError:
    sys.exit(3)
model = botocore.session.get_session().get_service_model('ecs')
failed = 0
for f in sys.argv[1:]:
    d = json.load(open(f))
    op = 'UpdateService' if 'service' in d and 'serviceName' not in d else 'RegisterTaskDefinition' if 'containerDefinitions' in d else 'CreateService'
    try:
        validate_parameters(d, model.operation_model(op).input_shape)
    except Exception as e:
        failed = 1
        print(f, op, e)
sys.exit(failed)
`

func TestBotocoreValidatesCLIFiles(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	files, _ := filepath.Glob("ecs/*.json")
	canary, _ := filepath.Glob("ecs/canary/*.json")
	out, err := exec.Command(python, append([]string{"-c", botocoreCheck}, append(files, canary...)...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 3 {
		t.Skip("python3 has no botocore")
	}
	if err != nil {
		t.Errorf("botocore: %v\n%s", err, out)
	}
}
