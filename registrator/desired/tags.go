package desired

import (
	"fmt"
	"strings"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/tmpl"
)

// TagTemplates are the -tags templates of this daemon's own mode, one per tag, added to every
// service's tags.
//
// What one can use: text, {{.Field}}, {{.Labels.key}} (an error when the label is missing), comments,
// variables, pipelines, parentheses, if/else, with/else, range with break and continue, and the
// functions in tagBuiltins. Anything else, and a field TagData does not have, fails at parse time,
// so at the daemon's start.
type TagTemplates []*tmpl.Template[TagData]

// tagBuiltins names the functions a tag template of this daemon's own mode may call.
var tagBuiltins = []string{"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "print", "printf", "println"}

// tagOptions are what a tag template of this daemon's own mode may call; a missing label is an
// error (text/template's missingkey=error), not "<no value>".
var tagOptions = func() tmpl.Options {
	all := tmpl.Builtins()
	funcs := make(map[string]*tmpl.Func, len(tagBuiltins))
	for _, n := range tagBuiltins {
		funcs[n] = all[n]
	}
	return tmpl.Options{Funcs: funcs, MissingKeyError: true}
}()

// TagData is what a -tags template sees. ECS fields are empty for a container ECS did not start, and
// while the metadata is still being fetched.
type TagData struct {
	ID               string // the Docker container ID
	Name             string // the Docker container name
	Image            string
	Labels           map[string]string
	Cluster          string
	TaskARN          string
	TaskID           string
	Family           string
	Revision         string
	Service          string // the ECS service name
	Container        string // the container's name in the task definition
	AvailabilityZone string
	InstanceID       string
	Region           string
}

// ParseTagTemplates parses a comma-separated list of Go templates, e.g. "ecs,az-{{.AvailabilityZone}}".
// Commas inside {{ }} do not split.
func ParseTagTemplates(s string) (TagTemplates, error) {
	var out TagTemplates
	for i, src := range splitOutsideActions(s) {
		src = strings.TrimSpace(src)
		if src == "" {
			continue
		}
		t, err := tmpl.Compile[TagData](fmt.Sprintf("tag %d", i+1), src, tagOptions)
		if err != nil {
			return nil, fmt.Errorf("tag template %q: %w", src, err)
		}
		out = append(out, t)
	}
	return out, nil
}

func splitOutsideActions(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "{{"):
			depth++
			i++
		case strings.HasPrefix(s[i:], "}}") && depth > 0:
			depth--
			i++
		case s[i] == ',' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// render executes the templates for one container. A template that fails, or renders something that
// is not a tag, is reported for this container and its tag left out; the services are still registered.
func (ts TagTemplates) render(c Container, host ecsmeta.Host, r *Result) []string {
	if len(ts) == 0 {
		return nil
	}
	d := TagData{ID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels, AvailabilityZone: host.AvailabilityZone,
		InstanceID: host.InstanceID, Region: host.Region}
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	if t := c.Task; t != nil {
		d.Cluster, d.TaskARN, d.TaskID, d.Family, d.Revision = t.Cluster, t.ARN, t.TaskID(), t.Family, t.Revision
		d.Service, d.Container = t.Service, t.Container
		if t.AvailabilityZone != "" {
			d.AvailabilityZone = t.AvailabilityZone
		}
		if d.Region == "" {
			d.Region = t.Region()
		}
	}
	var tags []string
	for _, t := range ts {
		b := &limitedWriter{max: maxNameLen + 1}
		if err := t.Execute(b, d); err != nil {
			r.warnf("-tags", "template %q failed for this container: %v; tag left out", t.String(), err)
			continue
		}
		tag := strings.TrimSpace(b.String())
		switch {
		case tag == "":
		case len(tag) > maxNameLen || strings.ContainsAny(tag, ",\n"):
			r.warnf("-tags", "template %q rendered %q, which is not a usable tag; left out", t.String(), tag)
		default:
			tags = append(tags, tag)
		}
	}
	return tags
}

// limitedWriter stops a template that writes more than a tag can hold (a {{range}} gone wild) early.
type limitedWriter struct {
	strings.Builder
	max int
}

var errTooLong = fmt.Errorf("output longer than %d bytes", maxNameLen)

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.Len()+len(p) > w.max {
		return 0, errTooLong
	}
	return w.Builder.Write(p)
}
