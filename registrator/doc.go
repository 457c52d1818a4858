// Package registrator keeps the local Consul agent holding exactly the services that the local Docker
// engine's opted-in containers should advertise. Docker events only say which container to look at; a
// de-duplicating work queue hands container IDs to Reconcile, which inspects the container, computes its
// desired services with a pure function (Desired) and writes only the difference to Consul. A periodic
// resync and a watch on the agent repair drift. The package only ever touches services it owns.
package registrator
