package backend

import "github.com/moby/moby/api/types/swarm"

// ServiceUpdate is a service update (POST /services/{id}/update), parsed.
type ServiceUpdate struct {
	Version swarm.Version
	Spec    swarm.ServiceSpec
	// EncodedRegistryAuth is the client's X-Registry-Auth ("" for none).
	EncodedRegistryAuth string
	// RegistryAuthFrom is where to take the auth from when the client
	// sent none: "spec" (or "") or "previous-spec".
	RegistryAuthFrom swarm.RegistryAuthSource
	// Rollback is "previous" to roll back to the previous spec ("" or
	// "none": an update to Spec).
	Rollback string
}

// ServiceLogsOptions are the parameters of a service's or a task's logs.
type ServiceLogsOptions struct {
	ShowStdout bool
	ShowStderr bool
	Since      string // as the client sent it (a Unix timestamp), "" for all
	Timestamps bool
	Follow     bool
	Tail       string // "all", "" or a number of lines per task
	Details    bool
}
