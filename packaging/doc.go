// Package packaging holds what an operator installs: the ECS task and service definitions of the
// daemon and of a Consul client agent (ecs/), those that move a cluster from gliderlabs/registrator
// host by host (ecs/canary/), a CloudFormation template that adds the daemon to a cluster with its own
// Consul client or pointed at the hosts' agents (cloudformation/), and a systemd unit for hosts
// without ECS (systemd/). Its tests validate every file against the AWS SDK's types and the daemon's
// own flags, evaluate the template's conditions, check the image's paths, and run the image as the
// task definition does.
package packaging
