// Package health turns a service's SERVICE_CHECK_* labels into Consul check definitions, and a
// container's own health (Docker HEALTHCHECK, ECS container health) into the status of a TTL check that
// mirrors it. It also decides what a check may be aimed at and send (target.go): Consul runs checks
// from the host, so a check goes to the container's own address, with a reading method, no redirect
// followed and no header that speaks for the host. It is pure: it decides, the registrator writes.
package health
