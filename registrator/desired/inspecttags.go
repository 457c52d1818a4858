package desired

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/ecs-registrator/ecs-registrator/internal/tmpl"
)

// InspectTagTemplate is gliderlabs-mode -tags: one template over the docker inspect document.
//
// As in gliderlabs/registrator, the template sees the whole container.InspectResponse
// ({{.Config.Hostname}}, {{.Config.Labels.team}}, {{index .Config.Labels "com.example.x"}},
// {{range .Config.Env}}...) with text/template's builtins and gliderlabs's functions strSlice,
// sIndex, mIndex, toUpper, toLower, replace, join, split, splitIndex, matchFirstElement,
// matchAllElements and jsonParse (internal/tmpl's gliderlabs.go); its output is split like
// SERVICE_TAGS. Where this differs from gliderlabs/registrator:
//   - httpGet, {{template}}, {{define}} and {{block}} are refused at the daemon's start;
//   - a field the document does not have (outside with and range, where dot is the document)
//     fails at the start, not at the first container;
//   - methods are not called ({{$port.Port}} on a nat.Port): fields and map keys only;
//   - jsonParse also takes a string (a label or an environment value holding JSON), since
//     httpGet, the only source of its []byte argument in gliderlabs, is refused;
//   - a failure is reported for that container (its services keep their other tags), rather than
//     stopping the daemon.
type InspectTagTemplate struct {
	t *tmpl.Template[container.InspectResponse]
}

// Bounds of what one container's -tags render may produce.
const (
	// maxInspectTagsOutput bounds the rendered text: a {{range}} gone wild stops early.
	maxInspectTagsOutput = 64 << 10
	// inspectTagsName names the template in errors, as gliderlabs's template.New("tags").
	inspectTagsName = "tags"
)

// refusedInInspectTags are functions gliderlabs offers that this daemon does not, and why.
var refusedInInspectTags = map[string]string{
	"httpGet": "a -tags template runs in a privileged daemon on every host for every container; an HTTP " +
		"request from it can be aimed by container labels at internal services (SSRF) and stalls " +
		"registration while the server is slow; put the value into a label or an environment variable " +
		"instead (jsonParse reads JSON from a string)",
	"call":     "a tag template has no functions to call",
	"html":     "tags are not HTML",
	"js":       "tags are not JavaScript",
	"urlquery": "tags are not URL queries",
}

// ParseInspectTagTemplate parses gliderlabs-mode -tags. Its errors are for the operator: the
// template's syntax, a refused function or action, or a field the docker inspect document does not have.
func ParseInspectTagTemplate(src string) (*InspectTagTemplate, error) {
	funcs := tmpl.Builtins()
	maps.Copy(funcs, tmpl.GliderlabsFuncs())
	t, err := tmpl.Compile[container.InspectResponse](inspectTagsName, src, tmpl.Options{Funcs: funcs, Refuse: refusedInInspectTags})
	if err != nil {
		return nil, fmt.Errorf("-tags template: %w", err)
	}
	return &InspectTagTemplate{t: t}, nil
}

// Render renders the template for one container and splits its output into tags. A template
// that fails returns no tags and why. Tags Consul cannot take (longer than maxNameLen bytes, or
// holding a newline) are left out and described in the error; the others are returned with it.
func (t *InspectTagTemplate) Render(in container.InspectResponse) ([]string, error) {
	out, err := t.execute(in)
	if err != nil {
		return nil, err
	}
	var tags, bad []string
	for _, tag := range splitTags(out) {
		if len(tag) > maxNameLen || strings.Contains(tag, "\n") {
			bad = append(bad, tag)
			continue
		}
		tags = append(tags, tag)
	}
	if len(bad) > 0 {
		quoted := make([]string, len(bad))
		for i, b := range bad {
			if len(b) > 64 {
				b = b[:64] + "..."
			}
			quoted[i] = strconv.Quote(b)
		}
		return tags, fmt.Errorf("-tags template rendered %d tags longer than %d bytes or holding a newline, left out: %s",
			len(bad), maxNameLen, strings.Join(quoted, ", "))
	}
	return tags, nil
}

// execute is the template's output for one container, before splitting.
func (t *InspectTagTemplate) execute(in container.InspectResponse) (string, error) {
	w := &limitedWriter{max: maxInspectTagsOutput}
	if err := t.t.Execute(w, in); err != nil {
		if errors.Is(err, errTooLong) {
			return "", fmt.Errorf("-tags template: output longer than %d bytes", maxInspectTagsOutput)
		}
		return "", err
	}
	return w.String(), nil
}
