package services

// Differences of the service API from swarm mode's that are by design
// (docs/compat.md, "Services"): shoal answers the client's mistakes 400
// where dockerd 20.10 answers 500, with swarm mode's words.
func init() {
	known["TestServiceErrors/create: constraint without operator"] = "a bad constraint is the client's mistake: shoal answers 400 where swarm mode answers 500 (its manager returns the parser's error without a gRPC code); the words are swarm mode's"
	known["TestServiceErrors/logs: no stream"] = "logs asked for without stdout or stderr are the client's mistake: 400, as dockerd answers it for a container's logs (20.10 answers service logs 500: a bare error); the words are 20.10's"
	known["TestServiceLogs/GET /services/{name}/logs? [error]"] = "logs asked for without stdout or stderr are the client's mistake: 400, as dockerd answers it for a container's logs (20.10 answers service logs 500: a bare error); the words are 20.10's"
}
