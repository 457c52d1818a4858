// Package packaging holds what an operator installs: the ECS task and service definitions of the
// daemon and of a Consul client agent (ecs/), a CloudFormation template that adds both to a cluster
// (cloudformation/), and a systemd unit for hosts without ECS (systemd/). Its tests validate every file
// against the AWS SDK's types and the daemon's own flags, and run the image as the task definition does.
package packaging
