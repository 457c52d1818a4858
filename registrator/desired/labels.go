package desired

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// labels holds a container's SERVICE_ keys with the prefix removed, split into container-level and
// per-port keys. Keys are case-insensitive after the prefix, as in gliderlabs/registrator
// (SERVICE_name is SERVICE_NAME), and held in upper case. Labels win over env vars of the same key.
type labels struct {
	global map[string]string         // NAME, TAGS, ..., and Meta keys
	ports  map[int]map[string]string // port -> NAME, TAGS, ...
	given  map[string]string         // key as held -> the key as the container spelled it, for messages
	// env holds the keys (SERVICE_X, SERVICE_<port>_X) whose value came from an environment
	// variable: env values may be secrets (ECS task secrets arrive as environment variables), so they
	// give routing keys but not Meta (buildMeta).
	env map[string]bool
}

// fromEnv reports whether a container-level key's value came from the environment.
func (l labels) fromEnv(k string) bool { return l.env["SERVICE_"+k] }

// portFromEnv reports whether a per-port key's value came from the environment.
func (l labels) portFromEnv(p int, k string) bool { return l.env[fmt.Sprintf("SERVICE_%d_%s", p, k)] }

func (l labels) key(k string) string { return l.spelled("SERVICE_" + k) }

func (l labels) portKey(p int, k string) string { return l.spelled(fmt.Sprintf("SERVICE_%d_%s", p, k)) }

func (l labels) spelled(k string) string {
	if g, ok := l.given[k]; ok {
		return g
	}
	return k
}

func parseLabels(c Container, r *Result) labels {
	l := labels{global: map[string]string{}, ports: map[int]map[string]string{}}
	merged := map[string]string{}
	envKeys := map[string]bool{}
	// Env first, then labels over it. Within one source, two spellings of a key are reported and the
	// last in sorted order wins, so the outcome does not depend on map order.
	var env, lab []kv
	for _, e := range c.Env {
		if k, v, ok := strings.Cut(e, "="); ok && strings.HasPrefix(k, "SERVICE_") {
			env = append(env, kv{k, v})
		}
	}
	for k, v := range c.Labels {
		if strings.HasPrefix(k, "SERVICE_") {
			lab = append(lab, kv{k, v})
		}
	}
	for si, src := range [][]kv{env, lab} {
		slices.SortFunc(src, func(a, b kv) int { return strings.Compare(a.k, b.k) })
		for i, e := range src {
			upper := "SERVICE_" + strings.ToUpper(e.k[len("SERVICE_"):])
			if upper != e.k {
				// Another spelling of the key earlier in this source?
				for _, prev := range src[:i] {
					if strings.EqualFold(prev.k, e.k) && prev.v != e.v {
						r.warnf(e.k, "%s is the same key as %s (keys are case-insensitive after SERVICE_); %q is used", e.k, prev.k, e.v)
					}
				}
				if l.given == nil {
					l.given = map[string]string{}
				}
				l.given[upper] = e.k
			} else {
				delete(l.given, upper)
			}
			merged[upper] = e.v
			envKeys[upper] = si == 0
		}
	}
	for _, k := range slices.Sorted(maps.Keys(merged)) {
		v := merged[k]
		rest := strings.TrimPrefix(k, "SERVICE_")
		if first, attr, ok := strings.Cut(rest, "_"); ok && isDigits(first) {
			p, err := strconv.Atoi(first)
			if err != nil || p < 1 || p > 65535 {
				r.errorf(l.spelled(k), "%s is not a port number (1-65535); key ignored", first)
				continue
			}
			if l.ports[p] == nil {
				l.ports[p] = map[string]string{}
			}
			l.ports[p][attr] = v
			l.markEnv(fmt.Sprintf("SERVICE_%d_%s", p, attr), envKeys[k])
			continue
		}
		l.global[rest] = v
		l.markEnv(k, envKeys[k])
	}
	return l
}

// markEnv records where the value now held under k came from (two spellings of a port, 80 and 080,
// are one key: the last value wins, and so does its source).
func (l *labels) markEnv(k string, env bool) {
	switch {
	case !env:
		delete(l.env, k)
	case l.env == nil:
		l.env = map[string]bool{k: true}
	default:
		l.env[k] = true
	}
}

type kv struct{ k, v string }

// value is a key's value from attrs (container-level or one port's). In gliderlabs mode an empty
// value is no value, as gliderlabs reads it: SERVICE_NAME= keeps the default name.
func (l labels) value(attrs map[string]string, k string, o Options) (string, bool) {
	v, ok := attrs[k]
	if o.Gliderlabs && v == "" {
		return "", false
	}
	return v, ok
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// buildMeta merges container-level and per-port Meta keys (per-port wins) with the daemon's own keys.
// Meta comes from labels only: an environment variable's value may be a secret (ECS task secrets
// arrive as environment variables), and Meta is readable by anyone who may read the catalog. An
// env-only Meta key is reported, without its value. Gliderlabs mode takes Meta from the environment
// too, as gliderlabs/registrator did (README, "Coming from gliderlabs/registrator").
func buildMeta(c Container, o Options, l labels, port int, r *Result) map[string]string {
	user := map[string]string{}
	keyOf := map[string]string{}
	add := func(attrs map[string]string, label func(string) string, fromEnv func(string) bool) {
		for _, k := range slices.Sorted(maps.Keys(attrs)) {
			if attrKeys[k] || isCheckKey(k) || isConnectKey(k) {
				continue
			}
			if fromEnv(k) && !o.Gliderlabs {
				r.warnf(label(k), "environment variable not put in Meta: environment values may be secrets (ECS task secrets arrive as environment variables); to publish it as Meta[%q], set it as a Docker label (dockerLabels in an ECS task definition)", strings.ToLower(k))
				continue
			}
			user[strings.ToLower(k)] = attrs[k]
			keyOf[strings.ToLower(k)] = label(k)
		}
	}
	add(l.global, l.key, l.fromEnv)
	add(l.ports[port], func(k string) string { return l.portKey(port, k) }, func(k string) bool { return l.portFromEnv(port, k) })
	host := o.Host

	meta := map[string]string{
		MetaExternalSource: ExternalSource,
		MetaContainerID:    c.ID,
		MetaContainerName:  c.Name,
	}
	own := func(k, v string) {
		if v != "" && len(v) <= maxMetaValueLen {
			meta[k] = v
		}
	}
	own(MetaEC2InstanceID, host.InstanceID)
	own(MetaAvailabilityZone, host.AvailabilityZone)
	if t := c.Task; t != nil {
		own(MetaECSCluster, t.Cluster)
		own(MetaECSTaskARN, t.ARN)
		own(MetaECSTaskFamily, t.Family)
		own(MetaECSTaskRevision, t.Revision)
		own(MetaECSService, t.Service)
		own(MetaECSContainer, t.Container)
		own(MetaAvailabilityZone, t.AvailabilityZone)
		own(MetaECSTags, strings.Join(t.TagsRead, ","))
		// Task tags (allow-listed with -ecs-tag-meta) are defaults; the container's own labels win.
		for k, v := range t.Tags {
			k = strings.ToLower(k)
			if _, set := user[k]; !set {
				user[k] = v
				keyOf[k] = "task tag " + k
			}
		}
	}
	// Keys the daemon sets (or would set once the metadata is known) cannot come from labels.
	reserved := func(k string) bool {
		switch k {
		case MetaECSCluster, MetaECSTaskARN, MetaECSTaskFamily, MetaECSTaskRevision, MetaECSService,
			MetaECSContainer, MetaAvailabilityZone, MetaEC2InstanceID, MetaChecks, MetaECSTags:
			return true
		}
		return meta[k] != ""
	}
	for _, k := range slices.Sorted(maps.Keys(user)) {
		v, label := user[k], keyOf[k]
		switch {
		case reserved(k):
			r.warnf(label, "meta key %q is set by ecs-registrator itself; label ignored", k)
		case !metaKeyRE.MatchString(k):
			r.warnf(label, "meta key %q may only hold letters, digits, '-' and '_'; dropped", k)
		case len(k) > maxMetaKeyLen:
			r.warnf(label, "meta key is longer than %d characters; dropped", maxMetaKeyLen)
		case strings.HasPrefix(k, "consul-"):
			r.warnf(label, "meta keys starting with \"consul-\" are reserved by Consul; dropped")
		case len(v) > maxMetaValueLen:
			r.warnf(label, "meta value is %d bytes, Consul allows %d; dropped", len(v), maxMetaValueLen)
		case len(meta) >= maxMetaPairs-1: // one is kept for MetaChecks
			r.warnf(label, "Consul allows %d meta pairs per service; dropped", maxMetaPairs)
		default:
			meta[k] = v
		}
	}
	return meta
}

// splitTags splits a SERVICE_TAGS value: a comma list in which \, is a comma inside a tag.
func splitTags(s string) []string {
	var tags []string
	var cur strings.Builder
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
		cur.Reset()
	}
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ',':
			cur.WriteByte(',')
			i++
		case s[i] == ',':
			flush()
		default:
			cur.WriteByte(s[i])
		}
	}
	flush()
	return tags
}

func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("service name is empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("service name is %d characters long, more than %d", len(name), maxNameLen)
	case !nameRE.MatchString(name):
		return fmt.Errorf("service name %q may only hold letters, digits, '.', '-' and '_', and must start with a letter or digit", name)
	}
	return nil
}

func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("service ID is empty")
	case len(id) > maxNameLen:
		return fmt.Errorf("service ID is %d characters long, more than %d", len(id), maxNameLen)
	case !idRE.MatchString(id):
		return fmt.Errorf("service ID %q must not contain '/', '?', '#', '%%' or white space", id)
	}
	return nil
}

// imageBase turns "registry:5000/team/api:1.2@sha256:..." into "api", gliderlabs/registrator's default name.
func imageBase(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, "/"); i >= 0 {
		image = image[i+1:]
	}
	image, _, _ = strings.Cut(image, ":")
	return image
}
