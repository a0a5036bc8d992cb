#!/bin/sh
# Services on the demo (after `make demo` or scripts/demo.sh up): swarm
# mode's service commands through shoal manage, on plain engines. Creates
# a service of 3 replicas, scales it to 6, shows its tasks and the task
# containers, and leaves it running (docker service rm web removes it).
# DOCKER_HOST defaults to the demo's address.
set -eu
export DOCKER_HOST="${DOCKER_HOST:-tcp://127.0.0.1:2375}"
step() {
	printf '\n$ %s\n' "$*"
	"$@"
}
step docker service create --name web --replicas 3 --no-resolve-image busybox httpd -f -p 8080
step docker service ls
step docker service ps web
step docker service scale web=6
step docker service ps web
step docker ps --filter label=com.docker.swarm.service.name=web --format '{{.Names}}'
printf '\n# web keeps running; try docker service logs web, docker service update --replicas 2 web, docker service rm web\n'
