package desired

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Policy is the registration policy (-policy): which service names, explicit service IDs and mesh
// membership a container may claim, decided from what the ECS agent says the container is (its
// com.amazonaws.ecs.* labels and task metadata, never its SERVICE_ keys). ParsePolicy makes one;
// a nil *Policy allows anything, as the daemon does without -policy.
//
// The first rule that matches a container decides; when none does, the default. Desired carries out
// the verdict per service: a refused service is kept out with an error Problem whose Refused says
// what was refused, and the container's other services are not affected.
type Policy struct {
	source string
	def    Default
	rules  []rule
}

// Default is what a policy allows a container that no rule matches.
type Default string

const (
	// DefaultAllow allows anything: the daemon's behaviour without a policy.
	DefaultAllow Default = "allow"
	// DefaultDeny allows nothing.
	DefaultDeny Default = "deny"
	// DefaultECSIdentity allows an ECS task container its ECS service name and its task family
	// (each also as <name>-<port>), the IDs that begin with those, and the mesh; a container
	// without ECS labels nothing.
	DefaultECSIdentity Default = "ecs-identity"
)

// What a policy refused, in Problem.Refused: a fixed set, so that a metric labelled by it is bounded.
const (
	RefusedName = "name"
	RefusedID   = "id"
	RefusedMesh = "mesh"
)

// Refusals lists every Problem.Refused value.
var Refusals = []string{RefusedName, RefusedID, RefusedMesh}

// Source is where the policy was read from: a file, or "inline".
func (p *Policy) Source() string { return p.source }

// Default is what the policy allows a container no rule matches.
func (p *Policy) Default() Default { return p.def }

// Rules is the number of the policy's rules.
func (p *Policy) Rules() int { return len(p.rules) }

// rule is one of a policy's rules: whom it matches (every matcher must) and what it allows them.
type rule struct {
	n        int       // 1-based, as messages name it
	match    []matcher // in the order the file gives them
	names    []string  // globs
	ids      []string  // globs; when !idsGiven, IDs that begin with an allowed name
	idsGiven bool
	connect  bool
}

// matcher is one match field of a rule: cluster, family, service or image, and its glob.
type matcher struct{ field, glob string }

// matches reports whether every match field of the rule matches the container. The ECS fields come
// from the container's task (the agent's labels, task metadata), so a rule that gives one matches only
// ECS task containers; the image is the one the container was created with.
func (r rule) matches(c Container) bool {
	for _, m := range r.match {
		if m.field == "image" {
			if !globMatch(m.glob, c.Image) {
				return false
			}
			continue
		}
		t := c.Task
		if t == nil {
			return false
		}
		var ok bool
		switch m.field {
		case "cluster":
			ok = slices.ContainsFunc(clusterNames(t.Cluster), func(v string) bool { return globMatch(m.glob, v) })
		case "family":
			ok = globMatch(m.glob, t.Family)
		case "service":
			ok = globMatch(m.glob, t.Service)
		}
		if !ok {
			return false
		}
	}
	return true
}

// clusterNames are the values a cluster glob is matched against. The agent's cluster label holds
// ECS_CLUSTER as the host was configured with it (agent/engine/docker_task_engine.go sets it from
// cfg.Cluster, "default" when unset): a name, or a full ARN, arn:aws:ecs:<region>:<account>:cluster/<name>,
// whose name is matched too.
func clusterNames(v string) []string {
	if strings.HasPrefix(v, "arn:") {
		if _, name, ok := strings.Cut(v, ":cluster/"); ok {
			return []string{name, v}
		}
	}
	return []string{v}
}

func (r rule) String() string {
	if len(r.match) == 0 {
		return fmt.Sprintf("policy rule %d (any container)", r.n)
	}
	var parts []string
	for _, m := range r.match {
		parts = append(parts, m.field+" "+m.glob)
	}
	return fmt.Sprintf("policy rule %d (%s)", r.n, strings.Join(parts, ", "))
}

// grant is what the policy allows one container: which rule or default decided, and what it allows.
type grant struct {
	by       string
	all      bool     // anything: no policy, or the default allow
	names    []string // globs, or literal names when literal is set
	literal  bool
	ids      []string // explicit IDs' globs, when idsGiven
	idsGiven bool
	mesh     bool
	allows   string // what it allows, in words, for messages
}

// grant decides what the policy allows the container; a nil policy allows anything.
func (p *Policy) grant(c Container) grant {
	if p == nil {
		return grant{all: true}
	}
	for _, r := range p.rules {
		if !r.matches(c) {
			continue
		}
		g := grant{by: r.String(), names: r.names, ids: r.ids, idsGiven: r.idsGiven, mesh: r.connect}
		ids := "the IDs that are an allowed name or begin with one and ':'"
		if r.idsGiven {
			ids = "the IDs " + listOr(r.ids, "none")
		}
		mesh := "not the mesh (\"connect\": false)"
		if r.connect {
			mesh = "the mesh"
		}
		g.allows = fmt.Sprintf("the names %s (each also as <name>-<port>), %s, %s", listOr(r.names, "none"), ids, mesh)
		return g
	}
	g := grant{by: fmt.Sprintf("the policy's default (%s)", p.def)}
	switch p.def {
	case DefaultAllow:
		g.all = true
	case DefaultECSIdentity:
		if c.Task == nil {
			g.allows = "nothing to a container without ECS labels"
			return g
		}
		var who []string
		if s := c.Task.Service; s != "" {
			g.names = append(g.names, s)
			who = append(who, s+" (its ECS service)")
		}
		if f := c.Task.Family; f != "" && !slices.Contains(g.names, f) {
			g.names = append(g.names, f)
			family := f + " (its task family)"
			if c.Task.Service == "" {
				family = f + " (its task family; its ECS service is not known yet, or it has none)"
			}
			who = append(who, family)
		}
		if len(who) == 0 {
			g.allows = "nothing to a task without a family or service"
			return g
		}
		g.literal, g.mesh = true, true
		g.allows = fmt.Sprintf("this task the names %s, each also as <name>-<port>, the IDs that are one of those or begin with one and ':', and the mesh for them",
			strings.Join(who, " and "))
	default:
		g.allows = "nothing"
	}
	return g
}

// name reports whether the service name is allowed on container port port: a name the grant allows,
// or one followed by -<port>, the form several ports give. Consul and DNS treat names without regard
// to case, and so does this.
func (g grant) name(name string, port int) bool {
	if g.all {
		return true
	}
	cands := []string{name}
	if base, ok := strings.CutSuffix(name, "-"+strconv.Itoa(port)); ok && base != "" {
		cands = append(cands, base)
	}
	for _, n := range g.names {
		for _, c := range cands {
			if g.literal && strings.EqualFold(n, c) || !g.literal && globMatch(strings.ToLower(n), strings.ToLower(c)) {
				return true
			}
		}
	}
	return false
}

// id reports whether an explicit service ID is allowed: one matching the rule's ids, or without
// them, an ID that is an allowed name or an allowed name followed by ':' and anything (the
// daemon's own IDs are <node>:<container>:<port>; names cannot hold ':', so the part before the first
// ':' is the only candidate). A '-' or '.' is no separator: they are part of names, and "orders-v2"
// is another service's name, not an ID of orders.
func (g grant) id(id string, port int) bool {
	switch {
	case g.all:
		return true
	case g.idsGiven:
		return slices.ContainsFunc(g.ids, func(glob string) bool { return globMatch(glob, id) })
	}
	prefix, _, _ := strings.Cut(id, ":")
	return g.name(prefix, port)
}

// refuse records a service the policy keeps out.
func (g grant) refuse(r *Result, key, what, kind string, port int) {
	r.add(Problem{Severity: SeverityError, Key: key, Refused: kind,
		Message: fmt.Sprintf("%s refused by %s, which allows %s; port %d kept out", what, g.by, g.allows, port)})
}

func listOr(xs []string, none string) string {
	if len(xs) == 0 {
		return none
	}
	return strings.Join(xs, ", ")
}

// globMatch reports whether s matches pattern, in which '*' stands for any run of characters (the
// empty run, '/' and ':' included: an image glob "*/payments/*" spans a registry host and a path)
// and every other byte for itself. path.Match would stop '*' at '/'. Linear backtracking to the last
// '*': O(len(pattern)*len(s)) at worst, no recursion.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, next := -1, 0 // the last '*' seen, and where in s its match would grow to
	for p < len(pattern) || i < len(s) {
		if p < len(pattern) {
			if pattern[p] == '*' {
				star, next = p, i+1
				p++
				continue
			}
			if i < len(s) && pattern[p] == s[i] {
				p++
				i++
				continue
			}
		}
		if star >= 0 && next <= len(s) {
			p, i = star+1, next
			next++
			continue
		}
		return false
	}
	return true
}
