// Package consul is the registrator's Consul adapter: Agent carries out the core's registrator.Agent
// calls over hashicorp/consul/api, and reads the agent's services back as an AgentState. It owns how
// the daemon reaches and authenticates to the agent (address or unix socket, TLS from the CONSUL_*
// variables, the token file read again when it changes, the aws-iam login), the registration body it
// writes (register.go: with DisableRedirects on HTTP checks, which consul/api lacks), and turns the
// agent's refusals into registrator.ErrRefused.
// A change to what is registered, or when, belongs in the core (registrator); a change to how a
// registration is written, read back or authorised belongs here.
package consul
