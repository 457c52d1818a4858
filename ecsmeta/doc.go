// Package ecsmeta owns everything the daemon learns from AWS: the ECS agent's Docker labels, its
// introspection API, task metadata v4, EC2 instance metadata (IMDSv2: the host's identity, and its Spot
// interruption and Auto Scaling termination notices) and, optionally, the ECS API.
// Labels are read with no network call; everything else is fetched in the background with caching,
// rate limits and backoff, so a slow or broken endpoint never delays a registration.
package ecsmeta
