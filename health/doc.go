// Package health turns a service's SERVICE_CHECK_* labels into Consul check definitions, and a
// container's own health (Docker HEALTHCHECK, ECS container health) into the status of a TTL check that
// mirrors it. It is pure: it decides, the registrator writes.
package health
