// Package tmpl evaluates the -tags templates: Go templates parsed by text/template/parse and
// executed here rather than by text/template. Change it to change how a template is parsed, checked
// or evaluated, or a function templates may call (text/template's builtins in funcs.go, gliderlabs's
// in gliderlabs.go). What a template sees, which functions a mode allows and how its output becomes
// tags are registrator/desired's (tags.go, inspecttags.go).
//
// Why not text/template: its field lookup calls reflect.Value.MethodByName with a name only known at
// run time, which makes the linker keep every exported method of every type the daemon can reach: 4 MB
// of binary and 3.7 MB of resident memory on every host. cmd/ecs-registrator's TestDependencies fails
// when the daemon links text/template again; TestStandardLibraryOnly, when this package imports
// anything but the standard library.
//
// The evaluator follows text/template's rules for everything it supports (fields, map keys,
// variables, pipelines, if, with, range, break, continue, the builtins and their argument checks, the
// printing) and differs where that keeps the daemon safe or fails sooner: it reads struct fields and
// map entries and never calls a method; a field the data's type does not have fails in Compile where
// dot is still the data; {{template}}, {{define}} and {{block}} fail in Compile; one execution gives up
// after maxSteps (2^20) steps; a panic is an error wrapping ErrInternal, never a crash.
//
// exec.go and funcs.go are adapted from text/template (Go's BSD-style license, noted in each, with the
// Go release they were compared against); the tests hold them to text/template's output and errors,
// over data shaped like the daemon's own -tags data and over the docker inspect document of
// gliderlabs mode.
package tmpl
