package status

import (
	"html"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The page is written by plain code rather than html/template: linking text/template's executor
// (its evalField calls reflect.Value.MethodByName) makes the linker keep every exported method of
// every reachable type, 4 MB of binary and 3.7 MB of resident memory on every host.
//
// Nothing from a snapshot goes into a URL, a script or a style: data lands only in element text
// and in double-quoted attribute values, where html.EscapeString is the right escaping.

// markup is HTML written as is. String literals convert to it implicitly, string variables do not:
// data has to go through esc (or num), so it cannot reach the page unescaped by accident.
type markup string

// esc escapes s for element text and double-quoted attribute values.
func esc(s string) markup { return markup(html.EscapeString(s)) }

func num(n int) markup { return markup(strconv.Itoa(n)) }

// page is the HTML being built; each method writes one part of it.
type page struct{ strings.Builder }

func (p *page) put(parts ...markup) {
	for _, s := range parts {
		p.WriteString(string(s))
	}
}

// filterStates are the choices of the page's state filter, in the order it lists them.
var filterStates = []string{StateRegistered, StatePartly, StateNotRegistered, StateDraining, "problems"}

// Render writes the HTML page for a snapshot.
func Render(w interface{ Write([]byte) (int, error) }, snap Snapshot, f Filter) error {
	var p page
	p.header(snap)
	p.put("<main>\n")
	p.host(snap.Time, snap.Host, snap.Daemon.Config["drain"])
	p.dependencies(snap.Time, snap.Dependencies)
	p.containers(snap.Containers, f)
	p.events(snap.Events)
	p.config(snap.Daemon.Config)
	p.put(pageEnd)
	_, err := io.WriteString(w, p.String())
	return err
}

func (p *page) header(snap Snapshot) {
	d := snap.Daemon
	p.put(pageStart, esc(d.Node), "</title>\n", style, "</head>\n<body>\n<header>\n  <h1>ecs-registrator</h1>\n")
	p.put("  <span>node <b>", esc(d.Node), "</b></span>\n")
	p.put("  <span>advertise ", esc(d.AdvertiseIP), "</span>\n")
	p.put("  <span>version ", esc(d.Version), "</span>\n")
	if d.Policy.Set {
		p.put(`  <span data-policy title="`, esc(d.Policy.String()), `">policy <b>`, esc(d.Policy.Default), "</b> by default, ", esc(d.Policy.rules()), "</span>\n")
	} else {
		p.put(`  <span data-policy><b>no registration policy</b>: any container may claim any name</span>`, "\n")
	}
	p.put("  <span>up ", esc(roundDuration(snap.Time.Sub(d.StartedAt))), "</span>\n")
	if d.Ready {
		p.put("  <span>ready</span>\n")
	} else {
		p.put("  <span><b>not ready</b>: first sync not done</span>\n")
	}
	p.put(`  <span class="mute">as of `, esc(snap.Time.UTC().Format(time.RFC3339)), "</span>\n</header>\n")
}

// host writes the line that says the whole host is draining, and why; nothing while it is not.
func (p *page) host(now time.Time, h Host, drain string) {
	for _, a := range h.Advisories {
		p.put(`<p class="host-advice" data-host-advice><span class="pill">advice</span> `, esc(a), " <span class=\"mute\">(nothing is drained on it)</span></p>\n")
	}
	if !h.Draining && h.Notice != "" {
		p.put(`<p class="host-draining" id="host-notice"><span class="pill">host going away</span> `, esc(h.Notice), "<br>", esc(h.Plan), "</p>\n\n")
	}
	if !h.Draining {
		return
	}
	p.put(`<p class="host-draining" id="host-draining"><span class="pill draining">host draining</span> `, esc(h.Reason))
	if !h.Since.IsZero() {
		p.put(` <span class="mute">since `, esc(ago(now, h.Since)), "</span>")
	}
	p.put("<br>Every container on this host is ")
	if drain == "maintenance" {
		p.put("in maintenance")
	} else {
		p.put("deregistered")
	}
	p.put(" and new containers are kept out, until the host is gone.</p>\n\n")
}

func (p *page) dependencies(now time.Time, deps []Dependency) {
	p.put("<h2>Dependencies</h2>\n<div class=\"deps\">")
	for _, d := range deps {
		p.put("\n  <div class=\"dep\" data-dependency=\"", esc(d.Name), "\">\n    <b>", esc(d.Name), "</b>")
		switch {
		case !d.Enabled:
			p.put(`<span class="pill off">off</span>`)
		case d.Up:
			p.put(`<span class="pill up">up</span>`)
		case d.LastError != "":
			p.put(`<span class="pill down">down</span>`)
		default:
			p.put(`<span class="pill unknown">idle</span><div class="mute">not needed yet`)
			if d.Name == "ecs-agent" || d.Name == "task-metadata" {
				p.put(": no ECS task containers")
			}
			p.put("</div>")
		}
		if d.Detail != "" {
			p.put(`<div class="mute">`, esc(d.Detail), "</div>")
		}
		if !d.LastEvent.IsZero() {
			p.put(`<div class="mute">last event `, esc(ago(now, d.LastEvent)), "</div>")
		}
		switch {
		case d.LastError != "" && !d.Up:
			p.put(`<div class="err">`, esc(d.LastError), "</div>")
		case d.LastError != "":
			p.put(`<div class="mute">earlier error: `, esc(d.LastError), "</div>")
		}
		p.put("\n  </div>")
	}
	p.put("\n</div>\n\n")
}

// containers writes the filter form and the table of the containers the filter lets through.
func (p *page) containers(all []Container, f Filter) {
	var shown []Container
	counts := map[string]int{}
	for _, c := range all {
		if f.match(c) {
			shown = append(shown, c)
		}
		counts[c.State]++
		if len(c.Problems) > 0 {
			counts["problems"]++
		}
	}
	p.put("<h2>Containers (", num(len(shown)), " of ", num(len(all)), ")</h2>\n")
	p.filterForm(f, counts)
	p.put(`<div class="scroll">
<table id="containers" class="stack">
<thead><tr><th>Container</th><th>State</th><th>ECS task</th><th>Services in Consul</th><th>Problems</th></tr></thead>
<tbody>`)
	for _, c := range shown {
		p.containerRow(c)
	}
	if len(shown) == 0 {
		p.put("\n<tr><td colspan=\"5\" class=\"mute\">No containers")
		if f.Query != "" || f.State != "" {
			p.put(" match the filter")
		}
		p.put(".</td></tr>")
	}
	p.put("\n</tbody>\n</table>\n</div>\n\n")
}

func (p *page) filterForm(f Filter, counts map[string]int) {
	p.put(`<form class="filter" method="get" action="/">`, "\n")
	p.put(`  <input type="search" name="q" value="`, esc(f.Query), `" placeholder="name, ID, image, service" aria-label="filter by name">`, "\n")
	p.put(`  <select name="state" aria-label="filter by state">`, "\n")
	p.put(`    <option value="">every state</option>`)
	for _, s := range filterStates {
		p.put("\n    <option value=\"", esc(s), "\"")
		if s == f.State {
			p.put(" selected")
		}
		p.put(">", esc(s), " (", num(counts[s]), ")</option>")
	}
	p.put("\n  </select>\n  <button type=\"submit\">Filter</button>\n</form>\n")
}

func (p *page) containerRow(c Container) {
	p.put("\n<tr data-container=\"", esc(c.ID), "\" data-name=\"", esc(c.Name), "\">\n")
	p.put(`  <td data-label="Container"><b>`, esc(c.Name), `</b><br><code class="mute">`, esc(c.ShortID()),
		`</code><br><span class="mute">`, esc(c.Image), "</span></td>\n")

	p.put(`  <td data-label="State"><span class="pill `, esc(strings.ReplaceAll(c.State, " ", "-")), `">`, esc(c.State), "</span>")
	if !c.Running {
		p.put(`<br><span class="mute">not running</span>`)
	}
	if c.Reason != "" {
		p.put(`<br><span class="reason">`, esc(c.Reason), "</span>")
	}
	p.put("</td>\n")

	p.put(`  <td data-label="ECS task">`)
	p.ecsTask(c.ECS)
	p.put("</td>\n")

	p.put(`  <td data-label="Services in Consul">`)
	p.services(c.Services)
	p.put("</td>\n")

	p.put(`  <td data-label="Problems">`)
	p.problems(c.Problems)
	p.put("</td>\n</tr>")
}

func (p *page) ecsTask(t *ECS) {
	if t == nil {
		p.put(`<span class="mute">not an ECS task</span>`)
		return
	}
	p.put(esc(t.Family), ":", esc(t.Revision))
	if t.Service != "" {
		p.put("<br>service ", esc(t.Service))
	}
	p.put(`<br><span class="mute">`, esc(t.Container), " in ", esc(t.Cluster), "</span>")
	if t.DesiredStatus != "" {
		p.put(`<br><span class="mute">desired `, esc(t.DesiredStatus), ", known ", esc(t.KnownStatus), "</span>")
	}
}

func (p *page) services(svcs []Service) {
	if len(svcs) == 0 {
		p.put(`<span class="mute">none</span>`)
		return
	}
	p.put(`<ul class="svc">`)
	for _, s := range svcs {
		p.put("\n    <li><b>", esc(s.Name), "</b> <code>", esc(s.Address), `</code><br><code class="mute">`, esc(s.ID), "</code>")
		if len(s.Tags) > 0 {
			p.put(`<br><span class="mute">tags `, esc(strings.Join(s.Tags, ", ")), "</span>")
		}
		if s.Maintenance != "" {
			p.put(`<br><span class="pill draining">maintenance</span> `, esc(s.Maintenance))
		}
		p.checks(s.Checks)
		if c := s.Connect; c != nil {
			p.put(`<br>mesh sidecar <code>`, esc(c.Address), `</code> <code class="mute">`, esc(c.SidecarID), "</code>")
			if len(c.Upstreams) > 0 {
				p.put(`<br><span class="mute">upstreams `, esc(strings.Join(c.Upstreams, ", ")), "</span>")
			}
			p.checks(c.Checks)
		}
		p.put("\n    </li>")
	}
	p.put("\n  </ul>")
}

func (p *page) checks(checks []Check) {
	if len(checks) == 0 {
		return
	}
	p.put(`<ul class="checks">`)
	for _, c := range checks {
		p.put(`<li><span class="pill `, esc(c.Status), `">`, esc(c.Status), "</span> ", esc(c.Name))
		if c.Output != "" {
			p.put(` <span class="mute">— `, esc(c.Output), "</span>")
		}
		p.put("</li>")
	}
	p.put("</ul>")
}

func (p *page) problems(probs []Problem) {
	if len(probs) == 0 {
		p.put(`<span class="mute">none</span>`)
		return
	}
	p.put(`<ul class="probs">`)
	for _, pr := range probs {
		p.put(`<li class="problem"><span class="pill `, esc(pr.Severity), `">`, esc(pr.Severity), "</span> ")
		if pr.Key != "" {
			p.put("<code>", esc(pr.Key), "</code>: ")
		}
		p.put(esc(pr.Message), "</li>")
	}
	p.put("</ul>")
}

func (p *page) events(evs []Event) {
	p.put(`<h2>Recent activity</h2>
<div class="scroll">
<table id="events" class="stack">
<thead><tr><th>Time (UTC)</th><th>Container</th><th>Source</th><th>What happened</th></tr></thead>
<tbody>`)
	for _, e := range evs {
		p.put("\n<tr>",
			`<td class="mono" data-label="Time (UTC)">`, esc(e.Time.UTC().Format("15:04:05.000")), "</td>",
			`<td data-label="Container">`, esc(e.Name), ` <code class="mute">`, esc(e.Container), "</code></td>",
			`<td data-label="Source">`, esc(e.Source), "</td>",
			`<td data-label="What happened"><b>`, esc(e.Action), "</b>")
		if e.Detail != "" {
			p.put(` <span class="mute">`, esc(e.Detail), "</span>")
		}
		p.put("</td></tr>")
	}
	if len(evs) == 0 {
		p.put("\n<tr><td colspan=\"4\" class=\"mute\">Nothing yet.</td></tr>")
	}
	p.put("\n</tbody>\n</table>\n</div>\n\n")
}

// config writes the daemon's flags, sorted by name, folded away.
func (p *page) config(cfg map[string]string) {
	p.put("<details>\n<summary>Configuration</summary>\n<div class=\"scroll\"><table>")
	for _, k := range slices.Sorted(maps.Keys(cfg)) {
		p.put("\n<tr><th class=\"mono\">", esc(k), "</th><td class=\"mono\">", esc(cfg[k]), "</td></tr>")
	}
	p.put("\n</table></div>\n</details>\n")
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return roundDuration(now.Sub(t)) + " ago"
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Minute).String()
	case d < 48*time.Hour:
		return d.Round(time.Hour).String()
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d"
	}
}

const pageStart = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ecs-registrator on `

// style is the page's only styling; the page loads nothing else.
const style = `<style>
:root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --mute: #57606a; --line: #d0d7de; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; }
header { padding: 12px 16px; background: #24292f; color: #fff; display: flex; flex-wrap: wrap; gap: 4px 18px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
header span { color: #d0d7de; }
main { padding: 12px 16px; max-width: 1400px; }
h2 { font-size: 16px; margin: 20px 0 8px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th { background: var(--bg); font-weight: 600; white-space: nowrap; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
.mute { color: var(--mute); }
.pill { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.up, .registered, .passing { background: #dafbe1; color: var(--ok); }
.down, .not-registered, .critical, .error { background: #ffebe9; color: var(--bad); }
.partly-registered, .draining, .warning { background: #fff8c5; color: var(--warn); }
.host-draining { border: 1px solid var(--warn); border-radius: 6px; padding: 8px 10px; background: #fff8c5; }
.off, .unknown { background: var(--bg); color: var(--mute); }
.deps { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 8px; }
.dep { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.dep b { margin-right: 6px; }
.dep .err { color: var(--bad); word-break: break-word; }
ul.svc, ul.probs { list-style: none; margin: 0; padding: 0; }
ul.svc > li + li, ul.probs > li + li { margin-top: 6px; }
.checks { margin: 2px 0 0 0; padding: 0; list-style: none; }
.checks li { font-size: 12.5px; }
form.filter { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 8px; }
form.filter input, form.filter select { font: inherit; padding: 4px 6px; }
details summary { cursor: pointer; }
@media (max-width: 700px) {
  main { padding: 8px; }
` +
	// Stacked rows: every cell on its own line with its column's name, nothing to scroll sideways.
	// (This line of blanks is where the template had that as a CSS comment, which html/template
	// dropped; it is kept so that the page stays byte for byte what it was.)
	"   \n" +
	`  table.stack, table.stack tbody, table.stack tr, table.stack td { display: block; width: 100%; }
  table.stack thead { display: none; }
  table.stack tr { border: 1px solid var(--line); border-radius: 6px; margin-bottom: 10px; padding: 4px 0; }
  table.stack td { border: none; padding: 3px 10px; overflow-wrap: anywhere; }
  table.stack td[data-label]::before { content: attr(data-label); display: block; font-size: 11px; font-weight: 600; color: var(--mute); text-transform: uppercase; }
}
</style>
`

const pageEnd = `<p class="mute">JSON: <a href="/v1/status">/v1/status</a> · <a href="/v1/containers">/v1/containers</a> · <a href="/metrics">/metrics</a> · <a href="/readyz">/readyz</a></p>
</main>
</body>
</html>
`
