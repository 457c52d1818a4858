package packaging

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// The AWS tools' own validators: cfn-lint for the template, and botocore's parameter validation (what
// the aws CLI runs before a call) for the JSON the aws ecs commands of packaging/README.md take.
// scripts/setup.sh installs Debian's python3-botocore; cfn-lint is a PyPI package, which this
// machine's Python has and Debian does not package. Without either, a laptop skips and CI fails.

func TestCfnLint(t *testing.T) {
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		testenv.Missing(t, "no cfn-lint (pip install cfn-lint)")
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
	files, _ := filepath.Glob("ecs/*.json")
	canary, _ := filepath.Glob("ecs/canary/*.json")
	args := append([]string{"-c", botocoreCheck}, append(files, canary...)...)
	// The PATH's python3 first (a pyenv one may have botocore), then Debian's, which setup.sh gives it.
	for _, python := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(python)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 3 {
			continue // no botocore in this one
		}
		if err != nil {
			t.Errorf("botocore (%s): %v\n%s", path, err, out)
		}
		return
	}
	testenv.Missing(t, "no python3 with botocore (apt-get install python3-botocore)")
}
